using Peft.Core;
using Peft.Evaluate;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Evaluation;

/// <summary>
/// The <see cref="ICausalLMScorer"/> that the <c>perplexity</c> metric needs, over a causal LM of this library (a
/// <see cref="PreTrainedModel"/> with an LM head or a <see cref="PeftModel"/> over one) and its tokenizer. It follows HF
/// evaluate's perplexity: each text is tokenised without special tokens, truncated to <c>maxLength</c> (minus one when
/// the BOS token is prepended), the BOS id is prepended when asked, and token t is scored by
/// <c>log_softmax(logits[t - 1])[token t]</c>. Texts run <c>batchSize</c> at a time, right-padded (so padding never
/// precedes a scored token and the values do not depend on the batching), under <c>no_grad</c>, in eval mode, on the
/// model's device.
/// </summary>
/// <example>
/// <code>
/// var scorer = new CausalLMScorer(model, tokenizer);
/// var result = Metrics.Load("perplexity").Compute(texts, [], new Dictionary&lt;string, object?&gt; { ["model"] = scorer });
/// </code>
/// </example>
public sealed class CausalLMScorer : ICausalLMScorer
{
    /// <summary>Wraps <paramref name="model"/> and <paramref name="tokenizer"/> (the caller keeps ownership of both).</summary>
    /// <param name="model">A causal LM: <see cref="ModelInput"/> (ids, mask) in, logits [B, T, V] out.</param>
    /// <param name="tokenizer">The model's tokenizer.</param>
    public CausalLMScorer(nn.Module<ModelInput, ModelOutput> model, PreTrainedTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        Model = model;
        Tokenizer = tokenizer;
    }

    /// <summary>The scored model.</summary>
    public nn.Module<ModelInput, ModelOutput> Model { get; }

    /// <summary>The tokenizer that turns texts into ids.</summary>
    public PreTrainedTokenizer Tokenizer { get; }

    /// <summary>
    /// The token ids scored for <paramref name="text"/>: its tokens without special tokens, truncated on the tokenizer's
    /// truncation side to <paramref name="maxLength"/> (including the BOS id), the BOS id first when
    /// <paramref name="addStartToken"/>.
    /// </summary>
    public IReadOnlyList<int> TokenIds(string text, bool addStartToken, int? maxLength)
    {
        ArgumentNullException.ThrowIfNull(text);
        int? bos = addStartToken
            ? Tokenizer.BosTokenId ?? throw new InvalidOperationException(
                $"perplexity: add_start_token=true needs a BOS token, but the tokenizer {Tokenizer.NameOrPath ?? "(unnamed)"} has none; pass add_start_token=false.")
            : null;
        if (maxLength is { } m && m < (addStartToken ? 2 : 1))
            throw new ArgumentOutOfRangeException(nameof(maxLength), m,
                $"perplexity: max_length must be at least {(addStartToken ? 2 : 1)} (it counts the BOS token when add_start_token=true).");
        var ids = Tokenizer.Encode(text, addSpecialTokens: false).ToList();
        int? keep = maxLength is { } ml ? ml - (addStartToken ? 1 : 0) : null;
        if (keep is { } k && ids.Count > k)
            ids = Tokenizer.TruncationSide == TruncationSide.Left ? ids.GetRange(ids.Count - k, k) : ids.GetRange(0, k);
        if (bos is { } b) ids.Insert(0, b);
        return ids;
    }

    /// <inheritdoc/>
    /// <remarks>A text with fewer than two ids (after the BOS id is prepended) gets an empty list; the metric then fails with HF's message.</remarks>
    public IReadOnlyList<IReadOnlyList<double>> TokenLogProbabilities(IReadOnlyList<string> texts, bool addStartToken, int? maxLength, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "perplexity: batch_size must be >= 1.");
        var sequences = texts.Select((t, i) => TokenIds(t ?? throw new ArgumentException($"perplexity: text {i} is null.", nameof(texts)), addStartToken, maxLength)).ToList();
        var results = new IReadOnlyList<double>[sequences.Count];
        var scored = Enumerable.Range(0, sequences.Count).Where(i => sequences[i].Count >= 2).ToList();
        foreach (var i in Enumerable.Range(0, sequences.Count).Except(scored)) results[i] = [];
        if (scored.Count == 0) return results;

        bool wasTraining = Model.training;
        if (wasTraining) Model.eval();
        try
        {
            var device = Model.parameters().FirstOrDefault()?.device ?? CPU;
            long pad = Tokenizer.PadTokenId ?? Tokenizer.EosTokenId ?? 0;
            for (int start = 0; start < scored.Count; start += batchSize)
            {
                var rows = scored.Skip(start).Take(batchSize).ToList();
                ScoreBatch(rows.Select(i => sequences[i]).ToList(), device, pad, rows, results);
            }
        }
        finally
        {
            if (wasTraining) Model.train();
        }
        return results;
    }

    private void ScoreBatch(List<IReadOnlyList<int>> batch, Device device, long pad, List<int> rows, IReadOnlyList<double>[] results)
    {
        int b = batch.Count, t = batch.Max(s => s.Count);
        var ids = new long[b * t];
        var mask = new long[b * t];
        Array.Fill(ids, pad);
        for (int r = 0; r < b; r++)
        {
            for (int j = 0; j < batch[r].Count; j++)
            {
                ids[r * t + j] = batch[r][j];
                mask[r * t + j] = 1;
            }
        }
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var idsT = tensor(ids, [b, t], device: device);
        var maskT = tensor(mask, [b, t], device: device);
        var output = Model.forward(new ModelInput { InputIds = idsT, AttentionMask = maskT });
        var logits = output.Logits ?? throw new InvalidOperationException(
            $"perplexity: {Model.GetType().Name} returned no logits; the scorer needs a causal LM (AutoModelForCausalLM).");
        if (logits.dim() != 3 || logits.shape[0] != b || logits.shape[1] != t)
            throw new InvalidOperationException(
                $"perplexity: {Model.GetType().Name} returned logits of shape [{string.Join(", ", logits.shape)}], expected [{b}, {t}, vocab]; the scorer needs a causal LM.");
        output.PastKeyValues?.Dispose();
        var logProbs = nn.functional.log_softmax(logits.narrow(1, 0, t - 1).to_type(ScalarType.Float32), -1)
            .gather(-1, idsT.narrow(1, 1, t - 1).unsqueeze(-1)).squeeze(-1)
            .to_type(ScalarType.Float64).cpu();
        var values = logProbs.data<double>().ToArray();
        for (int r = 0; r < b; r++)
            results[rows[r]] = values.AsSpan(r * (t - 1), batch[r].Count - 1).ToArray();
    }
}
