using Peft.Core.Modules;
using Peft.Core.Tuners;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>
/// Which layers of a model are quantised and how they are replaced (HF <c>replace_with_bnb_linear</c>): every
/// <see cref="Linear"/> and GPT-2 <see cref="Conv1D"/> except the output head — the root's last child, HF
/// <c>get_keys_to_not_convert</c> — and the settings' skip modules. Used by the streaming loader (one layer at a time)
/// and by <see cref="QuantizeInPlace"/> (an already built model, e.g. for <see cref="QLoraConfig"/>).
/// </summary>
public static class ModelQuantizer
{
    /// <summary>The names never quantised in <paramref name="model"/>: the root's last child and <paramref name="settings"/>' skip modules.</summary>
    public static IReadOnlyCollection<string> SkippedNames(nn.Module model, QuantizationSettings settings)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(settings);
        var skip = new HashSet<string>(settings.SkipModules ?? [], StringComparer.Ordinal);
        var last = model.named_children().LastOrDefault();
        if (last.name is not null) skip.Add(last.name);
        return skip;
    }

    /// <summary>Whether the module at <paramref name="path"/> is a quantisation target (a Linear / Conv1D whose path has no skipped name as a segment run).</summary>
    public static bool IsTarget(string path, nn.Module module, IReadOnlyCollection<string> skipped)
    {
        if (module is not (Linear or Conv1D)) return false;
        foreach (var k in skipped)
        {
            if (path == k || path.EndsWith("." + k, StringComparison.Ordinal) || path.StartsWith(k + ".", StringComparison.Ordinal)
                || path.Contains("." + k + ".", StringComparison.Ordinal))
                return false;
        }
        return true;
    }

    /// <summary>
    /// The quantised layer for <paramref name="original"/> built from <paramref name="weight"/> (storage layout of the
    /// original: Linear [out, in], Conv1D [in, out]) and <paramref name="bias"/>; neither tensor is kept.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Quantize(nn.Module original, Tensor weight, Tensor? bias, QuantizationSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        using var scope = NewDisposeScope();
        var w = original is Conv1D ? weight.t() : weight;                       // [out, in]
        return settings.Format is { } f
            ? new Linear4bit(w, bias, f, settings.ComputeDtype, settings.Blocksize, settings.DoubleQuant)
            : new Linear8bit(w, bias);
    }

    /// <summary>
    /// Replaces every target layer of <paramref name="model"/> by its quantised layer (the originals are disposed);
    /// layers that are already quantised stay. Returns how many layers were quantised.
    /// </summary>
    public static int QuantizeInPlace(nn.Module model, QuantizationSettings settings)
    {
        var skipped = SkippedNames(model, settings);
        var targets = model.named_modules().Where(nm => nm.name.Length > 0 && IsTarget(nm.name, nm.module, skipped)).ToList();
        foreach (var (path, module) in targets)
        {
            using var scope = NewDisposeScope();
            var weight = module.named_parameters(recurse: false).First(p => p.name == "weight").parameter.detach();
            var bias = module.named_parameters(recurse: false).FirstOrDefault(p => p.name == "bias").parameter?.detach();
            var q = Quantize(module, weight, bias, settings);
            var (parent, child, _) = ModuleSurgery.GetParent(model, path);
            ModuleSurgery.ReplaceChild(parent, child, q).Dispose();
        }
        return targets.Count;
    }

    /// <summary>Replaces every quantised linear of <paramref name="model"/> by a full-precision <c>nn.Linear</c> (<see cref="IQuantizedLinear.ToLinear"/>). Returns how many.</summary>
    public static int Dequantize(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var quantized = model.named_modules().Where(nm => nm.module is IQuantizedLinear).ToList();
        foreach (var (path, module) in quantized)
        {
            var linear = ((IQuantizedLinear)module).ToLinear();
            var (parent, child, _) = ModuleSurgery.GetParent(model, path);
            ModuleSurgery.ReplaceChild(parent, child, linear).Dispose();
        }
        return quantized.Count;
    }
}
