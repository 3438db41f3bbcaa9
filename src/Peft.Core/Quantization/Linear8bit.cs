using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>
/// A frozen LLM.int8 linear layer (bnb <c>Linear8bitLt</c> with <c>has_fp16_weights=False</c>): <c>weight</c> int8
/// [out, in] (CB) and <c>SCB</c> float32 [out] (row absmax of the float16 weight, <see cref="Int8Codec"/>). The forward
/// is bnb's: in evaluation, and in training on CUDA, <c>MatMul8bitLt</c> — the activations are quantised row-wise to
/// int8 too, multiplied with int32 accumulation and dequantised by row and column scales, and the input columns
/// holding an element with |x| ≥ <see cref="Threshold"/> (HF <c>llm_int8_threshold</c>, 6.0; 0 turns the
/// decomposition off) are multiplied in the input's dtype instead (see <see cref="Int8Matmul"/> for every rounding
/// step); in training on the CPU, <c>MatMul8bitFp</c> — a floating-point matmul with the dequantised weight, as bnb
/// does there. State-dict keys as bnb saves them: <c>weight</c>, <c>SCB</c>, <c>weight_format</c> (uint8 0 = "row"), <c>bias</c>.
/// </summary>
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

    /// <summary>
    /// Quantises <paramref name="weightToQuantize"/> [out, in] (not kept); copies <paramref name="biasToKeep"/>.
    /// <paramref name="threshold"/>: the outlier threshold (bnb's <c>Linear8bitLt</c> default 0 = none; HF passes 6.0).
    /// </summary>
    public Linear8bit(Tensor weightToQuantize, Tensor? biasToKeep, ScalarType? computeDtype = null, double threshold = 0.0)
        : this(Int8Codec.Quantize(weightToQuantize), biasToKeep, computeDtype, threshold)
    {
    }

    /// <summary>Builds the layer from CB int8 [out, in] and SCB float32 [out] (takes ownership).</summary>
    /// <exception cref="ArgumentException">Wrong dtypes or shapes, or a negative / non-finite threshold.</exception>
    public Linear8bit((Tensor CB, Tensor SCB) quantized, Tensor? biasToKeep, ScalarType? computeDtype = null, double threshold = 0.0) : base(nameof(Linear8bit))
    {
        if (!(threshold >= 0) || double.IsInfinity(threshold))
            throw new ArgumentException($"Linear8bit: the outlier threshold (llm_int8_threshold) must be a finite number ≥ 0, got {threshold}.", nameof(threshold));
        Threshold = threshold;
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

    /// <summary>Input columns with an element |x| ≥ this are multiplied in floating point (bnb <c>threshold</c>); 0 = none.</summary>
    public double Threshold { get; }

    /// <summary>The dtype of the matmul: the configured one, else the bias's, else float32 (the forward uses the input's when none is configured).</summary>
    public ScalarType ComputeDtype => _computeDtype ?? bias?.dtype ?? ScalarType.Float32;
    /// <inheritdoc />
    public long InFeatures => weight.shape[1];
    /// <inheritdoc />
    public long OutFeatures => weight.shape[0];
    /// <inheritdoc />
    public Parameter? Bias => bias;

    /// <inheritdoc />
    public Tensor DequantizeWeight(ScalarType dtype) => Int8Codec.Dequantize(weight, SCB, dtype);

    private readonly MergedWeight _merged = new();

    /// <inheritdoc />
    public bool KeepMergedWeightInFullPrecision { get => _merged.KeepFullPrecision; set => _merged.KeepFullPrecision = value; }

    /// <inheritdoc />
    public Device Device => weight.device;

    /// <inheritdoc />
    public Tensor GetWeight() => _merged.Get(ComputeDtype, () => DequantizeWeight(ComputeDtype));

    /// <inheritdoc />
    public void SetWeight(Tensor value) => _merged.Set(value, nameof(Linear8bit), OutFeatures, InFeatures, ComputeDtype, v =>
    {
        var (cb, scb) = Int8Codec.Quantize(v);
        using (no_grad())
        {
            weight.copy_(cb);
            SCB.copy_(scb);
        }
    });

    /// <inheritdoc />
    public Linear ToLinear()
    {
        using var scope = NewDisposeScope();
        return MergedWeight.ToLinear(_merged.Full ?? DequantizeWeight(ComputeDtype), bias, Device, ComputeDtype);
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
    public IQuantizedLinear CloneLayer() => new Linear8bit((weight.detach().clone(), SCB.clone()), bias, _computeDtype, Threshold);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _merged.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>
    /// x [..., in] → [..., out] in x's dtype, computed in the configured compute dtype, else x's: bnb's
    /// <c>MatMul8bitLt</c> (evaluation, or CUDA), <c>MatMul8bitFp</c> (training on the CPU), or, after a merge kept in
    /// full precision, a plain linear with the merged weight.
    /// </summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var inDtype = x.dtype;
        var dtype = _computeDtype ?? inDtype;
        var a = x.to_type(dtype).reshape(-1, x.shape[^1]);                                  // [N, in]
        var b = bias?.to_type(dtype);
        Tensor y;
        if (_merged.Full is { } merged) y = nn.functional.linear(a, merged.to_type(dtype), b);
        else if (training && a.device.type == DeviceType.CPU) y = nn.functional.linear(a, Int8Codec.DequantizeForFpMatmul(weight, SCB, dtype), b);
        else if (a.requires_grad && is_grad_enabled()) y = Int8MatmulFunction.Apply(a, weight, SCB, b, Threshold);
        else y = Int8Matmul.Forward(a, weight, SCB, b, Threshold);
        return y.view([.. x.shape[..^1], OutFeatures]).to_type(inDtype).MoveToOuterDisposeScope();   // [..., out]
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
