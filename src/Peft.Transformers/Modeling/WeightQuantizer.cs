using Peft.Core.Quantization;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// The loader's quantisation step for a <see cref="BitsAndBytesConfig"/>: the targets and replacement rules of
/// <see cref="ModelQuantizer"/> applied to a layer as its weight streams in from the checkpoint.
/// </summary>
internal sealed class WeightQuantizer
{
    private readonly QuantizationSettings _settings;
    private readonly IReadOnlyCollection<string> _skipped;

    private WeightQuantizer(QuantizationSettings settings, IReadOnlyCollection<string> skipped) => (_settings, _skipped) = (settings, skipped);

    /// <summary>The quantizer for <paramref name="config"/> on <paramref name="model"/>, or null when nothing is quantised.</summary>
    public static WeightQuantizer? For(BitsAndBytesConfig? config, nn.Module model)
    {
        if (config is null || (!config.LoadIn4Bit && !config.LoadIn8Bit)) return null;
        var settings = config.ToSettings();
        return new WeightQuantizer(settings, ModelQuantizer.SkippedNames(model, settings));
    }

    /// <summary>Whether the module at <paramref name="path"/> is quantised.</summary>
    public bool IsTarget(string path, nn.Module module) => ModelQuantizer.IsTarget(path, module, _skipped);

    /// <summary>The quantised replacement of <paramref name="original"/> from its checkpoint weight and bias (not kept).</summary>
    public nn.Module<Tensor, Tensor> Quantize(nn.Module original, Tensor weight, Tensor? bias) => ModelQuantizer.Quantize(original, weight, bias, _settings);

    /// <summary>Quantises targets still in full precision after loading (their weight was missing and initialised instead).</summary>
    public void QuantizeRemaining(nn.Module model) => ModelQuantizer.QuantizeInPlace(model, _settings);
}
