using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Pads each batch to its longest row with the tokenizer (dynamic padding; HF <c>DataCollatorWithPadding</c>),
/// rounded up to <paramref name="padToMultipleOf"/>; a <c>label</c> / <c>label_ids</c> column becomes <c>labels</c>.
/// </summary>
public sealed class DataCollatorWithPadding(PreTrainedTokenizer tokenizer, int? padToMultipleOf = null, int? maxLength = null) : IDataCollator
{
    /// <summary>The tokenizer that pads (saved beside the model by <see cref="Trainer.SaveModel"/> when the Trainer has none).</summary>
    public PreTrainedTokenizer Tokenizer { get; } = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));

    /// <inheritdoc />
    public Dictionary<string, Tensor> Collate(IReadOnlyList<IReadOnlyDictionary<string, object?>> features) =>
        DefaultDataCollator.StackAll(Tokenizer.Pad(features, padToMultipleOf, maxLength));
}

/// <summary>
/// Pads inputs with the tokenizer and token-level <c>labels</c> with -100 to the same length on the same side
/// (HF <c>DataCollatorForTokenClassification</c>).
/// </summary>
public sealed class DataCollatorForTokenClassification(PreTrainedTokenizer tokenizer, int? padToMultipleOf = null, long labelPadTokenId = -100) : IDataCollator
{
    /// <summary>The tokenizer that pads.</summary>
    public PreTrainedTokenizer Tokenizer { get; } = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));

    /// <inheritdoc />
    public Dictionary<string, Tensor> Collate(IReadOnlyList<IReadOnlyDictionary<string, object?>> features)
    {
        string? labelKey = features.Count > 0 ? new[] { "labels", "label" }.FirstOrDefault(features[0].ContainsKey) : null;
        var padded = Tokenizer.Pad(features.Select(f => (IReadOnlyDictionary<string, object?>)f.Where(kv => kv.Key != labelKey).ToDictionary()).ToList(), padToMultipleOf);
        if (labelKey is not null)
        {
            int len = ((long[])padded[0]["input_ids"]!).Length;
            bool left = Tokenizer.PaddingSide == PaddingSide.Left;
            for (int i = 0; i < padded.Count; i++)
                padded[i]["labels"] = TokenizerPadding.PadRow(FeatureValues.ToLongs(features[i][labelKey], labelKey, i), len, labelPadTokenId, left);
        }
        return DefaultDataCollator.StackAll(padded);
    }
}

/// <summary>
/// Sequence-to-sequence batches (HF <c>DataCollatorForSeq2Seq</c> without a model): inputs padded with the tokenizer,
/// <c>labels</c> padded with -100 to the longest label row (rounded up to <paramref name="padToMultipleOf"/>) on
/// the tokenizer's padding side. Inputs and labels may have different lengths.
/// </summary>
public sealed class DataCollatorForSeq2Seq(PreTrainedTokenizer tokenizer, int? padToMultipleOf = null, long labelPadTokenId = -100) : IDataCollator
{
    /// <summary>The tokenizer that pads.</summary>
    public PreTrainedTokenizer Tokenizer { get; } = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));

    /// <inheritdoc />
    public Dictionary<string, Tensor> Collate(IReadOnlyList<IReadOnlyDictionary<string, object?>> features)
    {
        bool hasLabels = features.Count > 0 && features[0].ContainsKey("labels");
        var padded = Tokenizer.Pad(features.Select(f => (IReadOnlyDictionary<string, object?>)f.Where(kv => kv.Key != "labels").ToDictionary()).ToList(), padToMultipleOf);
        if (hasLabels)
        {
            var labels = features.Select((f, i) => FeatureValues.ToLongs(f["labels"], "labels", i)).ToList();
            int len = labels.Max(l => l.Length);
            if (padToMultipleOf is int m && len % m != 0) len = (len / m + 1) * m;
            bool left = Tokenizer.PaddingSide == PaddingSide.Left;
            for (int i = 0; i < padded.Count; i++) padded[i]["labels"] = TokenizerPadding.PadRow(labels[i], len, labelPadTokenId, left);
        }
        return DefaultDataCollator.StackAll(padded);
    }
}
