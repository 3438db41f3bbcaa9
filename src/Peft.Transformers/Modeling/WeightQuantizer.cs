using Peft.Core.Quantization;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// The loader's quantisation step for a <see cref="BitsAndBytesConfig"/>: the targets and replacement rules of
/// <see cref="ModelQuantizer"/> applied to a layer as its weight streams in from the checkpoint — quantising a float
/// weight, or, for a folder saved quantised (<see cref="Prequantized"/>, config.json has <c>quantization_config</c>),
/// rebuilding the layer from bnb's serialised tensors (HF <c>Bnb4bitDeserialize</c> / <c>Bnb8bitDeserialize</c>).
/// </summary>
internal sealed class WeightQuantizer
{
    private readonly QuantizationSettings _settings;
    private readonly IReadOnlyCollection<string> _skipped;

    private WeightQuantizer(BitsAndBytesConfig config, QuantizationSettings settings, IReadOnlyCollection<string> skipped, bool prequantized) =>
        (Config, _settings, _skipped, Prequantized) = (config, settings, skipped, prequantized);

    /// <summary>The config this quantizer applies.</summary>
    public BitsAndBytesConfig Config { get; }

    /// <summary>True when the checkpoint already holds bnb's quantised tensors for the targets.</summary>
    public bool Prequantized { get; }

    /// <summary>The quantizer for <paramref name="config"/> on <paramref name="model"/>, or null when nothing is quantised.</summary>
    public static WeightQuantizer? For(BitsAndBytesConfig? config, nn.Module model, bool prequantized = false)
    {
        if (config is null || (!config.LoadIn4Bit && !config.LoadIn8Bit)) return null;
        var settings = config.ToSettings();
        return new WeightQuantizer(config, settings, ModelQuantizer.SkippedNames(model, settings), prequantized);
    }

    /// <summary>Whether the module at <paramref name="path"/> is quantised.</summary>
    public bool IsTarget(string path, nn.Module module) => ModelQuantizer.IsTarget(path, module, _skipped);

    /// <summary>The quantised replacement of <paramref name="original"/> from its checkpoint weight and bias (not kept).</summary>
    public nn.Module<Tensor, Tensor> Quantize(nn.Module original, Tensor weight, Tensor? bias) => ModelQuantizer.Quantize(original, weight, bias, _settings);

    /// <summary>
    /// The layer for <paramref name="original"/> rebuilt from its serialised tensors (keys relative to the layer:
    /// 4-bit <c>weight</c>, <c>weight.absmax</c>, <c>weight.quant_map</c>, <c>weight.nested_*</c>,
    /// <c>weight.quant_state.bitsandbytes__*</c>; 8-bit <c>weight</c> int8 and <c>SCB</c>; optional <c>bias</c>). The
    /// weight is stored [out, in] for Linear and Conv1D alike (HF does not transpose pre-quantised Conv1D weights).
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor is missing or its shape does not fit the layer (named with <paramref name="where"/>).</exception>
    public nn.Module<Tensor, Tensor> FromSerialized(nn.Module original, IReadOnlyDictionary<string, Tensor> tensors, string where)
    {
        var w = original.named_parameters(recurse: false).First(p => p.name == "weight").parameter;
        long outF = original is Peft.Core.Modules.Conv1D ? w.shape[1] : w.shape[0], inF = original is Peft.Core.Modules.Conv1D ? w.shape[0] : w.shape[1];
        tensors.TryGetValue("bias", out var bias);
        if (_settings.Format is not null)
        {
            var l4 = Linear4bit.FromBnbState(tensors, _settings.ComputeDtype, where);
            if (l4.OutFeatures != outF || l4.InFeatures != inF)
            {
                l4.Dispose();
                throw new InvalidDataException($"{where}: quant_state shape [{outF}, {inF}] expected, the file's state says [{string.Join(", ", new[] { l4.OutFeatures, l4.InFeatures })}].");
            }
            return l4;
        }
        if (!tensors.TryGetValue("weight", out var cb) || cb.dtype != ScalarType.Int8)
            throw new InvalidDataException($"{where}: an 8-bit layer needs an int8 'weight' (bnb CB), got {(cb is null ? "none" : cb.dtype.ToString())}.");
        if (!tensors.TryGetValue("SCB", out var scb))
            throw new InvalidDataException($"{where}: an 8-bit layer needs 'SCB' (the row absmax) beside its int8 weight.");
        if (cb.dim() != 2 || cb.shape[0] != outF || cb.shape[1] != inF)
            throw new InvalidDataException($"{where}: int8 weight [{string.Join(", ", cb.shape)}] does not fit [{outF}, {inF}].");
        return new Linear8bit((cb.detach().clone(), scb.detach().clone()), bias, threshold: _settings.Int8Threshold);
    }

    /// <summary>Quantises targets still in full precision after loading (their weight was missing and initialised instead).</summary>
    public void QuantizeRemaining(nn.Module model) => ModelQuantizer.QuantizeInPlace(model, _settings);
}
