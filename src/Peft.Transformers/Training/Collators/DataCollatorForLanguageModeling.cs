using TorchSharp;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers;

/// <summary>
/// Language-modelling batches (HF <c>DataCollatorForLanguageModeling</c>). Rows are padded with the tokenizer.
/// With <c>mlm: false</c> (causal LM) <c>labels</c> are the input ids with pad tokens set to -100 (the model shifts
/// them). With <c>mlm: true</c> each non-special token is chosen with probability <c>mlmProbability</c>; chosen
/// tokens are replaced by the mask token 80% of the time, by a random token 10%, kept 10%; labels are -100 except at
/// chosen positions. Random numbers come from the collator's own torch generator (seeded by the Trainer with
/// <see cref="TrainingArguments.Seed"/>, or by <c>seed</c>), so runs and resumed runs repeat.
/// </summary>
public sealed class DataCollatorForLanguageModeling : IDataCollator, IRandomCollator, IDisposable
{
    private readonly bool _mlm;
    private readonly double _mlmProbability;
    private readonly int? _padToMultipleOf;
    private readonly Generator _generator;

    /// <summary>A collator for causal (<paramref name="mlm"/> false) or masked language modelling.</summary>
    public DataCollatorForLanguageModeling(PreTrainedTokenizer tokenizer, bool mlm = true, double mlmProbability = 0.15, int? padToMultipleOf = null, long? seed = null)
    {
        Tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        if (mlm && tokenizer.MaskTokenId is null)
            throw new ArgumentException($"Tokenizer '{tokenizer.NameOrPath}' has no mask token, which masked language modelling needs; use mlm: false", nameof(mlm));
        if (!(mlmProbability > 0 && mlmProbability < 1)) throw new ArgumentOutOfRangeException(nameof(mlmProbability), mlmProbability, "must be in (0, 1)");
        (_mlm, _mlmProbability, _padToMultipleOf) = (mlm, mlmProbability, padToMultipleOf);
        _generator = new Generator((ulong)(seed ?? 42));
    }

    /// <summary>The tokenizer that pads.</summary>
    public PreTrainedTokenizer Tokenizer { get; }

    /// <inheritdoc />
    public Dictionary<string, Tensor> Collate(IReadOnlyList<IReadOnlyDictionary<string, object?>> features)
    {
        var batch = DefaultDataCollator.StackAll(Tokenizer.Pad(features.Select(WithoutLabels).ToList(), _padToMultipleOf));
        batch.Remove("special_tokens_mask", out var special);
        using var scope = NewDisposeScope();
        var ids = batch["input_ids"];
        if (!_mlm)
        {
            var labels = ids.clone();
            if (Tokenizer.PadTokenId is int pad) labels.masked_fill_(labels.eq(HeldScalars.Of(pad)), HeldScalars.Of(-100));
            batch["labels"] = labels.MoveToOuterDisposeScope();
        }
        else
        {
            var (inputs, labels) = Mask(ids, special);
            ids.Dispose();
            batch["input_ids"] = inputs.MoveToOuterDisposeScope();
            batch["labels"] = labels.MoveToOuterDisposeScope();
        }
        special?.Dispose();
        return batch;
    }

    private static IReadOnlyDictionary<string, object?> WithoutLabels(IReadOnlyDictionary<string, object?> f) =>
        f.Where(kv => kv.Key is not ("labels" or "label")).ToDictionary();

    // HF torch_mask_tokens: bernoulli(p) over non-special tokens; of those 80% → [MASK], half the rest → random id.
    private (Tensor Inputs, Tensor Labels) Mask(Tensor ids, Tensor? specialMask)
    {
        var inputs = ids.clone();
        var labels = ids.clone();
        var special = specialMask?.to(ScalarType.Bool) ?? IsSpecial(ids);
        var probability = full(ids.shape, HeldScalars.Of(_mlmProbability), ScalarType.Float32).masked_fill_(special, HeldScalars.Of(0.0));
        var masked = bernoulli(probability, _generator).to(ScalarType.Bool);
        labels.masked_fill_(masked.logical_not(), HeldScalars.Of(-100));
        var replaced = bernoulli(full(ids.shape, HeldScalars.Of(0.8), ScalarType.Float32), _generator).to(ScalarType.Bool).logical_and(masked);
        inputs.masked_fill_(replaced, HeldScalars.Of(Tokenizer.MaskTokenId!.Value));
        var random = bernoulli(full(ids.shape, HeldScalars.Of(0.5), ScalarType.Float32), _generator).to(ScalarType.Bool).logical_and(masked).logical_and(replaced.logical_not());
        var words = randint(Tokenizer.Count, ids.shape, ScalarType.Int64, generator: _generator);
        inputs = where(random, words, inputs);
        return (inputs, labels);
    }

    private Tensor IsSpecial(Tensor ids)
    {
        var special = zeros_like(ids, ScalarType.Bool);
        foreach (var id in Tokenizer.AllSpecialIds.Distinct()) special = special.logical_or(ids.eq(HeldScalars.Of(id)));
        return special;
    }

    /// <inheritdoc />
    public Tensor GetRngState() => _generator.get_state();

    /// <inheritdoc />
    public void SetRngState(Tensor state) => _generator.set_state(state);

    /// <inheritdoc />
    public void Seed(long seed) => _generator.manual_seed(seed);

    /// <inheritdoc />
    public void Dispose() => _generator.Dispose();
}
