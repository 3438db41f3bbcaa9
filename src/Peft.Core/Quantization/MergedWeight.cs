using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>
/// The merge bookkeeping shared by <see cref="Linear4bit"/> and <see cref="Linear8bit"/> (PEFT's bnb
/// <c>merge</c> / <c>unmerge</c> on a quantized base): setting a new weight (<see cref="Tuners.IBaseLayerWeight.SetWeight"/>)
/// either requantises it (bnb / PEFT) or, with <see cref="KeepFullPrecision"/>, keeps it in full precision so that
/// <c>ToLinear</c> returns it exactly. Owns the full-precision copy.
/// </summary>
internal sealed class MergedWeight : IDisposable
{
    private Tensor? _full;

    /// <summary>Keep a merged weight in full precision instead of requantising it (<see cref="IQuantizedLinear.KeepMergedWeightInFullPrecision"/>).</summary>
    public bool KeepFullPrecision { get; set; }

    /// <summary>The merged full-precision weight [out, in], or null when the layer computes from its quantised data.</summary>
    public Tensor? Full => _full;

    /// <summary>The weight [out, in] in <paramref name="dtype"/>: the merged copy, else <paramref name="dequantize"/>(). Caller owns it.</summary>
    public Tensor Get(ScalarType dtype, Func<Tensor> dequantize) => _full is { } m ? m.to_type(dtype) : dequantize();

    /// <summary>
    /// Replaces the weight by <paramref name="value"/> [out, in]: kept as a copy in <paramref name="keepDtype"/> when
    /// <see cref="KeepFullPrecision"/>, else handed (detached, inside a dispose scope) to <paramref name="requantize"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The shape is not [<paramref name="outFeatures"/>, <paramref name="inFeatures"/>] (named with <paramref name="layer"/>).</exception>
    public void Set(Tensor value, string layer, long outFeatures, long inFeatures, ScalarType keepDtype, Action<Tensor> requantize)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.shape.Length != 2 || value.shape[0] != outFeatures || value.shape[1] != inFeatures)
            throw new ArgumentException($"{layer}: new weight [{string.Join(", ", value.shape)}] does not fit [{outFeatures}, {inFeatures}].", nameof(value));
        if (KeepFullPrecision)
        {
            _full?.Dispose();
            _full = value.detach().to_type(keepDtype).clone().DetachFromDisposeScope();
            return;
        }
        using var scope = NewDisposeScope();
        requantize(value.detach());
    }

    /// <summary>A full-precision <c>nn.Linear</c> in <paramref name="dtype"/> holding <paramref name="weight"/> [out, in] and a copy of <paramref name="bias"/>.</summary>
    public static Linear ToLinear(Tensor weight, Parameter? bias, Device device, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var linear = nn.Linear(weight.shape[1], weight.shape[0], hasBias: bias is not null, device: device, dtype: dtype);
        using (no_grad())
        {
            linear.weight!.copy_(weight);
            if (bias is not null) linear.bias!.copy_(bias);
        }
        return linear;
    }

    /// <inheritdoc />
    public void Dispose() => _full?.Dispose();
}
