using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// The streaming loader's step for a folder saved quantised: the checkpoint tensors of one target layer (bnb's
/// serialised layout under the layer's path) are read together and the layer is rebuilt from them.
/// </summary>
internal static class PrequantizedLayers
{
    /// <summary>
    /// Replaces the layer at <paramref name="path"/> by its quantised form read from the checkpoint; marks its
    /// state-dict keys loaded and returns the file keys it consumed.
    /// </summary>
    /// <remarks><c>toModelKey</c> maps a file key to its model-space key (base-model prefix added or removed), or null.</remarks>
    public static IReadOnlyCollection<string> Load(PreTrainedModel model, CheckpointReader reader, IEnumerable<string> fileKeys,
        Func<string, string?> toModelKey, string path, nn.Module module, LoadPlan plan, HashSet<string> loaded, string dir)
    {
        var pre = path + ".";
        var mine = new Dictionary<string, string>(StringComparer.Ordinal);            // local key → file key
        foreach (var fk in fileKeys)
        {
            var mk = ModelSpace(fk, toModelKey(fk), pre, model.BaseModelPrefix + ".");
            if (mk is not null) mine.TryAdd(mk[pre.Length..], fk);
        }
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (local, fk) in mine)
        {
            bool isFloat = local == "bias";
            tensors[local] = reader.GetTensor(fk, isFloat ? plan.Dtype : null, plan.DeviceFor(path));
        }
        var where = $"{dir}: '{path}'";
        if (!mine.ContainsKey("weight"))
            throw new InvalidDataException($"{where}: the checkpoint has no '{pre}weight'; a pre-quantised folder stores every quantised layer.");
        if (!mine.ContainsKey("bias") && module.named_parameters(recurse: false).Any(p => p.name == "bias"))
            throw new InvalidDataException($"{where}: the checkpoint has no '{pre}bias' for a layer with a bias.");
        var layer = plan.Quantizer!.FromSerialized(module, tensors, where);
        var (parent, child, _) = Peft.Core.Tuners.ModuleSurgery.GetParent(model, path);
        Peft.Core.Tuners.ModuleSurgery.ReplaceChild(parent, child, layer).Dispose();
        loaded.Add(pre + "weight");
        loaded.Add(pre + "bias");
        return mine.Values.ToList();
    }

    /// <summary>The model-space name of file key <paramref name="fk"/> when it lies under <paramref name="pre"/>, else null.</summary>
    private static string? ModelSpace(string fk, string? mapped, string pre, string basePrefix)
    {
        foreach (var c in new[] { mapped, fk, basePrefix + fk, fk.StartsWith(basePrefix, StringComparison.Ordinal) ? fk[basePrefix.Length..] : null })
            if (c is not null && c.StartsWith(pre, StringComparison.Ordinal)) return c;
        return null;
    }
}
