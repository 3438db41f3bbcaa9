using Peft.Core.Modules;
using Peft.Core.Quantization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Turns a <see cref="BitsAndBytesConfig"/> into the loader's quantisation step (HF <c>replace_with_bnb_linear</c> +
/// bnb's parameter quantisation): which modules are quantised — every <see cref="Linear"/> and GPT-2
/// <see cref="Conv1D"/> except the output head (the root's last child, HF <c>get_keys_to_not_convert</c>) and
/// <c>llm_int8_skip_modules</c> — and the quantised layer built from a weight as it streams in.
/// </summary>
internal sealed class WeightQuantizer
{
    private readonly BitsAndBytesConfig _config;
    private readonly HashSet<string> _skip;
    private readonly FourBitFormat? _format;

    private WeightQuantizer(BitsAndBytesConfig config, HashSet<string> skip)
    {
        _config = config;
        _skip = skip;
        _format = config.LoadIn4Bit ? FourBitFormat.FromName(config.Bnb4BitQuantType) : null;
    }

    /// <summary>The quantizer for <paramref name="config"/> on <paramref name="model"/>, or null when nothing is quantised.</summary>
    public static WeightQuantizer? For(BitsAndBytesConfig? config, nn.Module model)
    {
        if (config is null || (!config.LoadIn4Bit && !config.LoadIn8Bit)) return null;
        config.Validate();
        var skip = new HashSet<string>(config.LlmInt8SkipModules ?? [], StringComparer.Ordinal);
        var last = model.named_children().LastOrDefault();
        if (last.module is Linear or Conv1D or Models.TiedLinear) skip.Add(last.name);
        return new WeightQuantizer(config, skip);
    }

    /// <summary>Whether the module at <paramref name="path"/> is quantised.</summary>
    public bool IsTarget(string path, nn.Module module) => module is Linear or Conv1D && !Skipped(path);

    private bool Skipped(string path)
    {
        foreach (var k in _skip)
        {
            if (path == k || path.EndsWith("." + k, StringComparison.Ordinal) || path.StartsWith(k + ".", StringComparison.Ordinal)
                || path.Contains("." + k + ".", StringComparison.Ordinal))
                return true;
        }
        return false;
    }

    /// <summary>
    /// Quantises targets still in full precision after loading (their weight was not in the checkpoint and was
    /// initialised instead), so the whole model follows the config.
    /// </summary>
    public void QuantizeRemaining(nn.Module model)
    {
        var pending = model.named_modules().Where(nm => nm.name.Length > 0 && IsTarget(nm.name, nm.module)).ToList();
        foreach (var (path, module) in pending)
        {
            using var scope = NewDisposeScope();
            var weight = module.named_parameters(recurse: false).First(p => p.name == "weight").parameter;
            var bias = module.named_parameters(recurse: false).FirstOrDefault(p => p.name == "bias").parameter;
            var q = Quantize(module, weight.detach(), bias?.detach());
            var (parent, child, _) = Peft.Core.Tuners.ModuleSurgery.GetParent(model, path);
            Peft.Core.Tuners.ModuleSurgery.ReplaceChild(parent, child, q).Dispose();
        }
    }

    /// <summary>
    /// The quantised replacement of <paramref name="original"/> from its checkpoint <paramref name="weight"/> (storage
    /// layout of the original: Linear [out, in], Conv1D [in, out]) and <paramref name="bias"/> (already in the load
    /// dtype). Neither tensor is kept.
    /// </summary>
    public nn.Module<Tensor, Tensor> Quantize(nn.Module original, Tensor weight, Tensor? bias)
    {
        using var scope = NewDisposeScope();
        var w = original is Conv1D ? weight.t() : weight;                       // [out, in]
        return _format is { } f
            ? new Linear4bit(w, bias, f, _config.Bnb4BitComputeDtype, _config.Bnb4BitBlocksize, _config.Bnb4BitUseDoubleQuant)
            : new Linear8bit(w, bias, computeDtype: null);
    }
}
