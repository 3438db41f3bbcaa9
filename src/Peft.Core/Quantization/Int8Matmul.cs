using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Quantization;

/// <summary>
/// bitsandbytes' LLM.int8 forward (<c>MatMul8bitLt.forward</c> with <c>has_fp16_weights=False</c>, through
/// <c>int8_vectorwise_quant</c>, <c>int8_linear_matmul</c>, the CUDA <c>kdequant_mm_int32_fp16</c> kernel and
/// <c>int8_mixed_scaled_mm</c>), emulated exactly with torch ops on any device:
/// <list type="number">
/// <item>A (the input in its dtype, [N, in]) is cast to float16. With <c>threshold</c> &gt; 0 every column holding an
/// element with |a16| ≥ threshold is an outlier column; outlier elements are left out of the row absmax.</item>
/// <item>SCA = row absmax of a16; CA = <see cref="Int8Codec">round(a16 · 127 / SCA)</see> as int8, outlier columns set to 0.</item>
/// <item>The int8 × int8 product with int32 accumulation, computed exactly with float32 matmuls over chunks of 1024
/// columns (every partial sum is an integer below 2^24, so exact in any summation order) added in float64.</item>
/// <item>Dequantisation as the CUDA kernel: float32 ((acc · SCA[r]) · SCB[c]) · 6.200012e-05 rounded once
/// (<c>fmaf(v, 1/127², 0)</c>), then to float16 — the kernel's output dtype. A float16 bias is fused into that fma;
/// any other bias is added afterwards to the float16 result (<c>out.add_(bias)</c>, float16 result).</item>
/// <item>The result is cast to A's dtype; the outlier columns are added in A's dtype:
/// <c>out.addmm(A[:, cols], (int8_vectorwise_dequant(CB[:, cols], SCB)).to(A.dtype).t())</c>.</item>
/// </list>
/// Known differences from the CUDA kernels: bnb's quantiser divides with <c>__fdividef</c> (approximate; a code
/// exactly at a half-way point may round the other way) and a fused float16 bias is added in double here (one more
/// rounding than <c>fmaf</c>); bnb's pure-torch backend differs from its own CUDA kernel in the dequantisation
/// constant (6.200124e-05) and keeps the result in float32.
/// </summary>
internal static class Int8Matmul
{
    /// <summary>float32(1/127²) as the CUDA kernel writes it (<c>MM_DEQUANT_CONST</c>).</summary>
    private const float DequantConst = 6.200012e-05f;

    /// <summary>Terms per float32 partial product: 1024 · 127² &lt; 2^24, so every partial sum is an exact integer.</summary>
    private const long ExactChunk = 1024;

    /// <summary>
    /// ca [N, in] int8 × cb [out, in] int8 → [N, out] with int32 accumulation, exactly: float32 matmuls over chunks of
    /// <see cref="ExactChunk"/> columns (integers below 2^24 in any summation order, TF32 included: int8 values fit its
    /// mantissa) summed in float64. Tensors are in the caller's scope.
    /// </summary>
    private static Tensor ExactProduct(Tensor ca, Tensor cb)
    {
        var a = ca.to_type(ScalarType.Float32);
        var b = cb.to_type(ScalarType.Float32);
        long k = a.shape[1];
        if (k <= ExactChunk) return a.matmul(b.t());
        Tensor? acc = null;
        for (long s = 0; s < k; s += ExactChunk)
        {
            long len = Math.Min(ExactChunk, k - s);
            var part = a.narrow(1, s, len).matmul(b.narrow(1, s, len).t()).to_type(ScalarType.Float64);
            acc = acc is null ? part : acc.add(part, HeldScalars.One);
        }
        return acc!;
    }

    /// <summary>
    /// a [N, in] (any float dtype) × the int8 weight (<paramref name="cb"/> [out, in], <paramref name="scb"/> [out])
    /// + <paramref name="bias"/> [out] (in a's dtype or null) → [N, out] in a's dtype. No autograd. Caller owns it.
    /// </summary>
    public static Tensor Forward(Tensor a, Tensor cb, Tensor scb, Tensor? bias, double threshold)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var a16 = a.to_type(ScalarType.Float16);                                            // [N, in]
        var abs = a16.abs();
        Tensor? cols = null;
        if (threshold > 0)
        {
            var outliers = abs.ge(HeldScalars.Of(threshold));                                              // [N, in], compared in float16
            abs = abs.masked_fill(outliers, HeldScalars.Of(0));
            var colMask = outliers.any(0);                                                  // [in]
            if (colMask.any().item<bool>()) cols = colMask.nonzero().view(-1);              // [k] int64
        }
        var sca = abs.amax([1]).to_type(ScalarType.Float32);                                // [N]
        var ca = Int8Codec.RowCodes(a16, sca);                                              // [N, in] int8
        if (cols is not null) ca = ca.index_fill(1, cols, HeldScalars.Of(0));
        var acc = ExactProduct(ca, cb);                                                     // [N, out], the int32 result
        var v = acc.to_type(ScalarType.Float32) * sca.unsqueeze(1) * scb.to_type(ScalarType.Float32).unsqueeze(0);  // (acc·rs)·cs
        Tensor out16;
        if (bias is not null && bias.dtype == ScalarType.Float16)
            out16 = (v.to_type(ScalarType.Float64) * HeldScalars.Of((double)DequantConst)).add(bias.to_type(ScalarType.Float64), HeldScalars.One).to_type(ScalarType.Float32).to_type(ScalarType.Float16);
        else
        {
            out16 = (v.to_type(ScalarType.Float64) * HeldScalars.Of((double)DequantConst)).to_type(ScalarType.Float32).to_type(ScalarType.Float16);  // one rounding, as fmaf
            if (bias is not null) out16 = out16.to_type(ScalarType.Float32).add(bias.to_type(ScalarType.Float32), HeldScalars.One).to_type(ScalarType.Float16);
        }
        var y = out16.to_type(a.dtype);
        if (cols is not null)
        {
            var subA = a.index_select(1, cols);                                             // [N, k] in a's dtype
            var subB = Int8Codec.Dequantize(cb.index_select(1, cols), scb, a.dtype).t();    // [k, out]
            y = y.addmm(subA, subB, 1, 1);
        }
        return y.MoveToOuterDisposeScope();
    }
}
