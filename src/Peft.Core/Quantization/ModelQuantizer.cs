using Peft.Core.Modules;
using Peft.Core.Tuners;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>
/// Which layers of a model are quantised and how they are replaced, as transformers 5's bitsandbytes quantizer
/// (<c>replace_with_bnb_linear</c>): every <see cref="Linear"/> and GPT-2 <see cref="Conv1D"/> (transposed first, as
/// HF's <c>Bnb4bitQuantize</c>) whose path <see cref="IsSkipped">matches</see> none of the modules not to convert. Those are
/// <c>llm_int8_skip_modules</c> when given — and then only those, as HF's <c>get_modules_to_not_convert</c>, so a skip
/// list without "lm_head" quantises the head — else the model's defaults (<see cref="IQuantizationDefaults"/>, HF
/// <c>get_keys_to_not_convert</c>). Used by the streaming loader (one layer at a time) and by
/// <see cref="QuantizeInPlace"/> (an already built model, e.g. for <see cref="QLoraConfig"/>).
/// </summary>
public static class ModelQuantizer
{
    /// <summary>
    /// The module-name patterns never quantised in <paramref name="model"/>: <paramref name="settings"/>' skip modules
    /// when set, else <see cref="IQuantizationDefaults.DefaultUnquantizedModules"/> (a plain module: its last named
    /// parameter without a ".weight" suffix, as HF's <c>get_keys_to_not_convert</c>).
    /// </summary>
    public static IReadOnlyCollection<string> SkippedNames(nn.Module model, QuantizationSettings settings)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.SkipModules is { } given) return given.Distinct(StringComparer.Ordinal).ToList();
        if (model is IQuantizationDefaults d) return d.DefaultUnquantizedModules;
        var last = model.named_parameters().Select(p => p.name).LastOrDefault();
        return last is null ? [] : [RemoveWeightSuffix(last)];
    }

    /// <summary>HF's <c>removesuffix(".weight")</c> on a parameter name (a ".bias" name stays as it is, as in HF).</summary>
    public static string RemoveWeightSuffix(string parameterName)
    {
        ArgumentNullException.ThrowIfNull(parameterName);
        return parameterName.EndsWith(".weight", StringComparison.Ordinal) ? parameterName[..^".weight".Length] : parameterName;
    }

    /// <summary>
    /// HF <c>should_convert_module</c> negated: whether <paramref name="path"/> is kept in full precision by one of
    /// <paramref name="patterns"/> — a pattern is a regular expression matched at the start of the path (so
    /// "model.layers.1" also covers "model.layers.1.mlp.up_proj" and, as in HF, "model.layers.10"), or a plain suffix
    /// of the path ("down_proj" covers "model.layers.0.mlp.down_proj"; as in HF, "proj" covers every "*_proj").
    /// </summary>
    /// <exception cref="ArgumentException">A pattern is not a valid regular expression (named).</exception>
    public static bool IsSkipped(string path, IReadOnlyCollection<string> patterns)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(patterns);
        foreach (var key in patterns)
        {
            if (path.EndsWith(key, StringComparison.Ordinal)) return true;
            System.Text.RegularExpressions.Regex re;
            try { re = new System.Text.RegularExpressions.Regex(@"\A(?:" + key + ")", System.Text.RegularExpressions.RegexOptions.CultureInvariant); }
            catch (ArgumentException e) { throw new ArgumentException($"llm_int8_skip_modules entry '{key}' is not a valid regular expression: {e.Message}", nameof(patterns), e); }
            if (re.IsMatch(path)) return true;
        }
        return false;
    }

    /// <summary>Whether the module at <paramref name="path"/> is a quantisation target (a Linear / Conv1D not <see cref="IsSkipped">skipped</see>).</summary>
    public static bool IsTarget(string path, nn.Module module, IReadOnlyCollection<string> skipped) =>
        module is Linear or Conv1D && !IsSkipped(path, skipped);

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
            : new Linear8bit(w, bias, threshold: settings.Int8Threshold);
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
