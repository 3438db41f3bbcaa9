using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Quantization;

/// <summary>
/// LLM.int8 row-wise absmax quantisation (bnb <c>int8_vectorwise_quant</c> / <c>int8_vectorwise_dequant</c>), used
/// for the weight (<c>Int8Params._quantize</c>: the <c>CB</c>/<c>SCB</c> pair) and, by <see cref="Int8Matmul"/>, for
/// the activations. The input is cast to float16 first, as bnb does (<c>B.to(torch.float16)</c>); SCB[r] = max |x16[r, :]|
/// (a float16 value, stored float32); CB = round_half_even(x16 · s) as int8 with s = float32(1 / SCB[r]) · 127 in float32 —
/// bnb's torch backend writes <c>127.0 / row_stats</c>, which torch evaluates as <c>row_stats.reciprocal() * 127</c>; the
/// CUDA kernel uses <c>__fdividef(127, absmax)</c>, an approximate division whose last bit may differ. A row of
/// zeros gives SCB 0 and codes 0 (0 · ∞ = NaN, which the kernel's <c>__float2int_rn</c> turns into 0).
/// Dequantisation: (CB · SCB) · (1/127 in float32), in that order.
/// </summary>
public static class Int8Codec
{
    /// <summary>float32(1/127): bnb's <c>int8_vectorwise_dequant</c> multiplier.</summary>
    internal const float InverseOf127 = 7.874015718698502e-3f;

    /// <summary>Quantises <paramref name="weight"/> [out, in] (any float dtype). Returns CB int8 [out, in] and SCB float32 [out]; caller owns both.</summary>
    public static (Tensor CB, Tensor SCB) Quantize(Tensor weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.dim() != 2) throw new ArgumentException($"int8 quantisation needs a 2-D weight, got shape [{string.Join(", ", weight.shape)}].", nameof(weight));
        using var scope = NewDisposeScope();
        var w16 = weight.to_type(ScalarType.Float16);
        var scb = w16.abs().amax([1]).to_type(ScalarType.Float32);                          // [out]
        var cb = RowCodes(w16, scb);                                                       // [out, in]
        return (cb.MoveToOuterDisposeScope(), scb.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// round_half_even(x16 · (reciprocal(rowStats) · 127)) as int8 [rows, cols] for x16 float16 [rows, cols] and rowStats float32
    /// [rows]; NaN (a zero row) becomes 0. Tensors are in the caller's scope.
    /// </summary>
    internal static Tensor RowCodes(Tensor x16, Tensor rowStats)
    {
        using var scope = NewDisposeScope();
        var scale = (rowStats.reciprocal() * HeldScalars.Of(127.0f)).unsqueeze(1);                       // [rows, 1] float32: torch's 127.0 / t is t.reciprocal() * 127
        var q = (x16.to_type(ScalarType.Float32) * scale).round();                         // [rows, cols] float32
        q = q.nan_to_num(0.0);
        return q.to_type(ScalarType.Int8).MoveToOuterDisposeScope();
    }

    /// <summary>(CB · SCB) · float32(1/127) [out, in], computed in float32 and cast to <paramref name="dtype"/> (bnb <c>int8_vectorwise_dequant</c>, PEFT's <c>dequantize_bnb_weight</c>). Caller owns it.</summary>
    public static Tensor Dequantize(Tensor cb, Tensor scb, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(cb);
        ArgumentNullException.ThrowIfNull(scb);
        using var scope = NewDisposeScope();
        var w = cb.to_type(ScalarType.Float32) * scb.to_type(ScalarType.Float32).view(-1, 1) * HeldScalars.Of(InverseOf127);
        return w.to_type(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The weight bnb's CPU training path multiplies with (<c>MatMul8bitFp</c>): CB cast to <paramref name="dtype"/>
    /// times (SCB · float32(1/127)) — the other order of <see cref="Dequantize"/>. Caller owns it.
    /// </summary>
    internal static Tensor DequantizeForFpMatmul(Tensor cb, Tensor scb, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var w = cb.to_type(dtype).mul_((scb.to_type(ScalarType.Float32) * HeldScalars.Of(InverseOf127)).unsqueeze(1));
        return w.MoveToOuterDisposeScope();
    }
}
