using Peft.Core.Quantization;

namespace Peft.Transformers;

/// <summary>
/// transformers 5's <c>get_keys_to_not_convert</c> for a <see cref="PreTrainedModel"/>: the tied checkpoint keys,
/// the last named parameter and the output embeddings' path, each without a ".weight" suffix (a ".bias" name is kept
/// whole, as HF's <c>removesuffix(".weight")</c> does — so for a classification head whose last parameter is
/// "classifier.bias" the pattern matches no module and the head is quantised, exactly as in HF). The tied sources
/// (input embeddings) are left out: they are never linear layers.
/// </summary>
internal static class QuantizationDefaults
{
    public static IReadOnlyCollection<string> For(PreTrainedModel model)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var k in model.TiedCheckpointKeys) names.Add(ModelQuantizer.RemoveWeightSuffix(k));
        if (model.named_parameters().Select(p => p.name).LastOrDefault() is { } last) names.Add(ModelQuantizer.RemoveWeightSuffix(last));
        if (model.GetOutputEmbeddings() is { } head)
        {
            foreach (var (path, module) in model.named_modules())
                if (ReferenceEquals(module, head)) names.Add(path);
        }
        return names.Order(StringComparer.Ordinal).ToList();
    }
}
