using Peft.Transformers;
using static TorchSharp.torch;

namespace QuickStart;

/// <summary>
/// Wraps a causal-LM collator and sets the labels of <c>&lt;unk&gt;</c> tokens to -100, so the loss never rewards
/// predicting "some rare word" and generation writes known words instead of <c>&lt;unk&gt;</c> (which decoding drops,
/// leaving holes in the text). Python: a collator that does <c>batch["labels"][batch["labels"] == unk_id] = -100</c>.
/// </summary>
internal sealed class IgnoreUnknownLabels(IDataCollator inner, int unkId) : IDataCollator
{
    /// <inheritdoc />
    public Dictionary<string, Tensor> Collate(IReadOnlyList<IReadOnlyDictionary<string, object?>> features)
    {
        var batch = inner.Collate(features);
        using var unknown = batch["labels"].eq(unkId);
        batch["labels"].masked_fill_(unknown, -100);
        return batch;
    }
}
