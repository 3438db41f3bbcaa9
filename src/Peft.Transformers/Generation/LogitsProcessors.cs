using TorchSharp;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Generation;

/// <summary>
/// One step of score shaping before the next token is chosen (HF <c>LogitsProcessor</c> / <c>LogitsWarper</c>).
/// </summary>
public interface ILogitsProcessor
{
    /// <summary>
    /// Returns processed scores [N, V] float32 for the running sequences <paramref name="inputIds"/> [N, T] int64.
    /// The result is a new tensor in the caller's dispose scope; <paramref name="scores"/> is not modified.
    /// </summary>
    Tensor Process(Tensor inputIds, Tensor scores);
}

/// <summary>An ordered list of processors applied one after the other (HF <c>LogitsProcessorList</c>).</summary>
public sealed class LogitsProcessorList : List<ILogitsProcessor>, ILogitsProcessor
{
    /// <inheritdoc />
    public Tensor Process(Tensor inputIds, Tensor scores)
    {
        var s = scores;
        foreach (var p in this) s = p.Process(inputIds, s);
        return ReferenceEquals(s, scores) ? scores.alias() : s;
    }

    /// <summary>
    /// The processors HF's <c>_get_logits_processor</c> builds for <paramref name="config"/>, in HF's order:
    /// repetition penalty, no-repeat n-gram, min length, min new tokens, then (when sampling) temperature, top-k, top-p.
    /// </summary>
    /// <param name="config">Resolved config (eos ids already filled in).</param>
    /// <param name="promptLength">Prompt length T0 (for min_new_tokens).</param>
    public static LogitsProcessorList FromConfig(GenerationConfig config, int promptLength)
    {
        ArgumentNullException.ThrowIfNull(config);
        var list = new LogitsProcessorList();
        var eos = config.EffectiveEosTokenIds;
        if (config.RepetitionPenalty != 1.0) list.Add(new RepetitionPenaltyLogitsProcessor(config.RepetitionPenalty));
        if (config.NoRepeatNgramSize > 0) list.Add(new NoRepeatNGramLogitsProcessor(config.NoRepeatNgramSize));
        if (config.MinLength > 0 && eos.Count > 0) list.Add(new MinLengthLogitsProcessor(config.MinLength, eos));
        if (config.MinNewTokens is > 0 && eos.Count > 0) list.Add(new MinNewTokensLengthLogitsProcessor(promptLength, config.MinNewTokens.Value, eos));
        if (config.DoSample)
        {
            int keep = config.NumBeams > 1 ? 2 : 1;
            if (config.Temperature != 1.0) list.Add(new TemperatureLogitsWarper(config.Temperature));
            if (config.TopK != 0) list.Add(new TopKLogitsWarper(config.TopK, keep));
            if (config.TopP < 1.0) list.Add(new TopPLogitsWarper(config.TopP, keep));
        }
        return list;
    }
}

/// <summary>
/// Divides positive scores (multiplies negative ones) of every token already in the sequence, prompt and padding
/// included, by <c>penalty</c> (HF <c>RepetitionPenaltyLogitsProcessor</c>, CTRL paper).
/// </summary>
public sealed class RepetitionPenaltyLogitsProcessor(double penalty) : ILogitsProcessor
{
    /// <summary>The penalty (&gt; 0; 1 = off, &gt; 1 discourages repeats).</summary>
    public double Penalty { get; } = penalty > 0 ? penalty : throw new ArgumentOutOfRangeException(nameof(penalty), penalty, "repetition penalty must be > 0");

    /// <inheritdoc />
    public Tensor Process(Tensor inputIds, Tensor scores)
    {
        using var picked = scores.gather(1, inputIds);                  // [N, T]
        using var neg = picked.lt(HeldScalars.Of(0));
        using var mul = picked.mul(HeldScalars.Of(Penalty));
        using var div = picked.div(HeldScalars.Of(Penalty));
        using var pen = torch.where(neg, mul, div);
        return scores.scatter(1, inputIds, pen);
    }
}

/// <summary>Forbids any token that would repeat an n-gram already in the sequence (HF <c>NoRepeatNGramLogitsProcessor</c>).</summary>
public sealed class NoRepeatNGramLogitsProcessor(int ngramSize) : ILogitsProcessor
{
    /// <summary>The n-gram size (&gt; 0).</summary>
    public int NgramSize { get; } = ngramSize > 0 ? ngramSize : throw new ArgumentOutOfRangeException(nameof(ngramSize), ngramSize, "no_repeat_ngram_size must be > 0");

    /// <inheritdoc />
    public Tensor Process(Tensor inputIds, Tensor scores)
    {
        int n = NgramSize;
        long rows = inputIds.shape[0], len = inputIds.shape[1];
        var result = scores.clone();
        if (len + 1 < n) return result;
        var ids = inputIds.to_type(ScalarType.Int64).cpu().data<long>().ToArray();
        for (long r = 0; r < rows; r++)
        {
            var row = new ReadOnlySpan<long>(ids, (int)(r * len), (int)len);
            var banned = new HashSet<long>();
            int start = (int)len - (n - 1);                         // the last n-1 tokens form the prefix to match
            for (int i = 0; i + n <= len; i++)
            {
                bool match = true;
                for (int j = 0; j < n - 1 && match; j++) match = row[i + j] == row[start + j];
                if (match) banned.Add(row[i + n - 1]);
            }
            foreach (var t in banned) result[r, t] = float.NegativeInfinity;
        }
        return result;
    }
}

/// <summary>Sets EOS scores to −inf while the total length is below <c>minLength</c> (HF <c>MinLengthLogitsProcessor</c>).</summary>
public sealed class MinLengthLogitsProcessor(int minLength, IReadOnlyList<int> eosTokenIds) : ILogitsProcessor
{
    /// <inheritdoc />
    public Tensor Process(Tensor inputIds, Tensor scores)
    {
        var result = scores.clone();
        if (inputIds.shape[^1] < minLength)
            foreach (var e in eosTokenIds) result[.., e] = float.NegativeInfinity;
        return result;
    }
}

/// <summary>Sets EOS scores to −inf until <c>minNewTokens</c> tokens follow the prompt (HF <c>MinNewTokensLengthLogitsProcessor</c>).</summary>
public sealed class MinNewTokensLengthLogitsProcessor(int promptLength, int minNewTokens, IReadOnlyList<int> eosTokenIds) : ILogitsProcessor
{
    /// <inheritdoc />
    public Tensor Process(Tensor inputIds, Tensor scores)
    {
        var result = scores.clone();
        if (inputIds.shape[^1] - promptLength < minNewTokens)
            foreach (var e in eosTokenIds) result[.., e] = float.NegativeInfinity;
        return result;
    }
}

/// <summary>Divides scores by the temperature (HF <c>TemperatureLogitsWarper</c>).</summary>
public sealed class TemperatureLogitsWarper(double temperature) : ILogitsProcessor
{
    /// <summary>The temperature (&gt; 0).</summary>
    public double Temperature { get; } = temperature > 0 ? temperature : throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be > 0");

    /// <inheritdoc />
    public Tensor Process(Tensor inputIds, Tensor scores) => scores.div(HeldScalars.Of(Temperature));
}

/// <summary>Keeps the <c>topK</c> highest scores (ties with the k-th included) and sets the rest to −inf (HF <c>TopKLogitsWarper</c>).</summary>
public sealed class TopKLogitsWarper(int topK, int minTokensToKeep = 1) : ILogitsProcessor
{
    /// <inheritdoc />
    public Tensor Process(Tensor inputIds, Tensor scores)
    {
        int k = (int)Math.Min(Math.Max(topK, minTokensToKeep), scores.shape[^1]);
        var (values, indices) = scores.topk(k, dim: -1);
        using var _v = values;
        using var _i = indices;
        using var kth = values[.., ^1..];                                  // [N, 1]
        using var remove = scores.lt(kth);
        return scores.masked_fill(remove, HeldScalars.Of(float.NegativeInfinity));
    }
}

/// <summary>
/// Nucleus filtering: keeps the smallest set of most likely tokens whose probability mass exceeds <c>topP</c>
/// (HF <c>TopPLogitsWarper</c>: ascending sort, remove while the cumulative mass is ≤ 1 − top_p).
/// </summary>
public sealed class TopPLogitsWarper(double topP, int minTokensToKeep = 1) : ILogitsProcessor
{
    /// <inheritdoc />
    public Tensor Process(Tensor inputIds, Tensor scores)
    {
        using var scope = torch.NewDisposeScope();
        var (sorted, order) = scores.sort(dim: -1, descending: false);
        var cum = sorted.softmax(-1).cumsum(-1);
        var removeSorted = cum.le(HeldScalars.Of(1 - topP));
        removeSorted[.., ^minTokensToKeep..] = false;
        var remove = removeSorted.scatter(1, order, removeSorted);
        return scores.masked_fill(remove, HeldScalars.Of(float.NegativeInfinity)).MoveToOuterDisposeScope();
    }
}
