using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>
/// A frozen linear layer with an LLM.int8-style weight (bnb <c>Linear8bitLt</c> with <c>has_fp16_weights=False</c>):
/// <c>weight</c> int8 [out, in] (CB) and <c>SCB</c> float32 [out] (row absmax), dequantised into the input's dtype
/// (or <see cref="ComputeDtype"/>) on every forward. State-dict keys as bnb saves them: <c>weight</c>, <c>SCB</c>,
/// <c>weight_format</c> (uint8 0 = "row"), <c>bias</c>.
/// </summary>
/// <remarks>
/// Outliers: bnb splits activation columns above <c>llm_int8_threshold</c> (6.0) into an fp16 matmul because it
/// also quantises the activations to int8. This layer quantises only the weight and multiplies in floating point,
/// so every activation keeps full precision — the outlier path is unnecessary and its result is what bnb computes
/// with the threshold at 0 for every column. The weight's rounding error (absmax/254 per row) is the same as bnb's.
/// </remarks>
public sealed class Linear8bit : nn.Module<Tensor, Tensor>, IQuantizedLinear
{
    /// <summary>Row-wise int8 codes [out, in], requires_grad = false (bnb <c>weight</c> / <c>CB</c>).</summary>
    public Parameter weight;
    /// <summary>Bias [out] or null.</summary>
    public Parameter? bias;
    /// <summary>Row absmax [out], float32 (bnb <c>SCB</c>).</summary>
    public Tensor SCB;
    /// <summary>Layout marker, uint8 scalar 0 = row-major (bnb <c>weight_format</c>).</summary>
    public Tensor weight_format;

    /// <summary>Quantises <paramref name="weightToQuantize"/> [out, in] (not kept); copies <paramref name="biasToKeep"/>.</summary>
    public Linear8bit(Tensor weightToQuantize, Tensor? biasToKeep, ScalarType? computeDtype = null)
        : this(Int8Codec.Quantize(weightToQuantize), biasToKeep, computeDtype)
    {
    }

    /// <summary>Builds the layer from CB int8 [out, in] and SCB float32 [out] (takes ownership).</summary>
    public Linear8bit((Tensor CB, Tensor SCB) quantized, Tensor? biasToKeep, ScalarType? computeDtype = null) : base(nameof(Linear8bit))
    {
        var (cb, scb) = quantized;
        if (cb.dim() != 2 || cb.dtype != ScalarType.Int8 || scb.shape.Length != 1 || scb.shape[0] != cb.shape[0])
            throw new ArgumentException($"Linear8bit needs CB int8 [out, in] and SCB [out]; got {cb.dtype} [{string.Join(", ", cb.shape)}] and [{string.Join(", ", scb.shape)}].", nameof(quantized));
        _computeDtype = computeDtype;
        weight = new Parameter(cb.DetachFromDisposeScope(), requires_grad: false);
        SCB = scb.to_type(ScalarType.Float32).DetachFromDisposeScope();
        weight_format = tensor((byte)0).DetachFromDisposeScope();
        bias = biasToKeep is null ? null : new Parameter(biasToKeep.detach().clone().DetachFromDisposeScope(), requires_grad: false);
        RegisterComponents();
    }

    private readonly ScalarType? _computeDtype;

    /// <summary>The dtype of the matmul: the configured one, else the bias's, else float32.</summary>
    public ScalarType ComputeDtype => _computeDtype ?? bias?.dtype ?? ScalarType.Float32;
    /// <inheritdoc />
    public long InFeatures => weight.shape[1];
    /// <inheritdoc />
    public long OutFeatures => weight.shape[0];
    /// <inheritdoc />
    public Parameter? Bias => bias;

    /// <inheritdoc />
    public Tensor DequantizeWeight(ScalarType dtype) => Int8Codec.Dequantize(weight, SCB, dtype);

    private Tensor? _merged;

    /// <inheritdoc />
    public bool KeepMergedWeightInFullPrecision { get; set; }

    /// <inheritdoc />
    public Device Device => weight.device;

    /// <inheritdoc />
    public Tensor GetWeight() => _merged is { } m ? m.to_type(ComputeDtype) : DequantizeWeight(ComputeDtype);

    /// <inheritdoc />
    public void SetWeight(Tensor value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.shape.Length != 2 || value.shape[0] != OutFeatures || value.shape[1] != InFeatures)
            throw new ArgumentException($"Linear8bit: new weight [{string.Join(", ", value.shape)}] does not fit [{OutFeatures}, {InFeatures}].", nameof(value));
        if (KeepMergedWeightInFullPrecision)
        {
            _merged?.Dispose();
            _merged = value.detach().to_type(ComputeDtype).clone().DetachFromDisposeScope();
            return;
        }
        using var scope = NewDisposeScope();
        var (cb, scb) = Int8Codec.Quantize(value.detach());
        using (no_grad())
        {
            weight.copy_(cb);
            SCB.copy_(scb);
        }
    }

    /// <inheritdoc />
    public Linear ToLinear()
    {
        using var scope = NewDisposeScope();
        var w = _merged ?? DequantizeWeight(ComputeDtype);
        var linear = nn.Linear(InFeatures, OutFeatures, hasBias: bias is not null, device: Device, dtype: ComputeDtype);
        using (no_grad())
        {
            linear.weight!.copy_(w);
            if (bias is not null) linear.bias!.copy_(bias);
        }
        return linear;
    }

    /// <inheritdoc />
    public void CastBias(ScalarType dtype)
    {
        if (bias is null || bias.dtype == dtype) return;
        var cast = new Parameter(bias.detach().to_type(dtype).DetachFromDisposeScope(), requires_grad: bias.requires_grad);
        _internal_params["bias"] = cast;
        bias.Dispose();
        bias = cast;
    }

    /// <inheritdoc />
    public IQuantizedLinear CloneLayer() => new Linear8bit((weight.detach().clone(), SCB.clone()), bias, _computeDtype);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _merged?.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>x [..., in] → [..., out] in x's dtype (computed in the configured compute dtype, else x's dtype).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var inDtype = x.dtype;
        var dtype = _computeDtype ?? inDtype;
        var w = GetWeight().to_type(dtype);                                     // [out, in]
        var y = nn.functional.linear(x.to_type(dtype), w, bias?.to_type(dtype));
        return y.to_type(inDtype).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    protected override nn.Module _to(Device device, ScalarType dtype, bool non_blocking) => throw QuantizedModuleMoves.DtypeCast(nameof(Linear8bit), dtype);

    /// <inheritdoc />
    protected override nn.Module _to(ScalarType dtype, bool non_blocking) => throw QuantizedModuleMoves.DtypeCast(nameof(Linear8bit), dtype);

    /// <inheritdoc />
    protected override nn.Module _to(DeviceType deviceType, int deviceIndex, bool non_blocking)
    {
        // Parameters and buffer fields move with TorchSharp's own device-only logic (dtypes are untouched).
        return base._to(deviceType, deviceIndex, non_blocking);
    }
}
