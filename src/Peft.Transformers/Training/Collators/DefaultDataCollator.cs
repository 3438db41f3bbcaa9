using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Stacks features that are already padded (HF <c>DefaultDataCollator</c> / <c>default_data_collator</c>): a
/// <c>label</c> or <c>label_ids</c> column becomes <c>labels</c>; text columns are skipped.
/// </summary>
public sealed class DefaultDataCollator : IDataCollator
{
    /// <inheritdoc />
    public Dictionary<string, Tensor> Collate(IReadOnlyList<IReadOnlyDictionary<string, object?>> features) => StackAll(features);

    internal static Dictionary<string, Tensor> StackAll(IReadOnlyList<IReadOnlyDictionary<string, object?>> features)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.Count == 0) throw new ArgumentException("cannot collate an empty batch", nameof(features));
        var batch = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var key in features[0].Keys)
            {
                if (!FeatureStacker.IsNumeric(features, key)) continue;
                string name = key is "label" or "label_ids" ? "labels" : key;
                batch[name] = FeatureStacker.Stack(features, key);
            }
        }
        catch
        {
            foreach (var t in batch.Values) t.Dispose();
            throw;
        }
        return batch;
    }
}
