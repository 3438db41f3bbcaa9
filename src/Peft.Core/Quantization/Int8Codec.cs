using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>
/// LLM.int8 row-wise absmax quantisation of a weight (bnb <c>int8_vectorwise_quant</c>, the <c>CB</c>/<c>SCB</c>
/// pair of <c>Int8Params</c>): SCB[r] = max |W[r, :]| (float32), CB = round(W · (127 / SCB[r])) as int8 (round half
/// to even, as torch.round). Dequantisation: W ≈ CB · SCB / 127.
/// </summary>
public static class Int8Codec
{
    /// <summary>Quantises <paramref name="weight"/> [out, in] (any float dtype). Returns CB int8 [out, in] and SCB float32 [out]; caller owns both.</summary>
    public static (Tensor CB, Tensor SCB) Quantize(Tensor weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.dim() != 2) throw new ArgumentException($"int8 quantisation needs a 2-D weight, got shape [{string.Join(", ", weight.shape)}].", nameof(weight));
        using var scope = NewDisposeScope();
        var w = weight.to_type(ScalarType.Float32);
        var scb = w.abs().amax([1]);                                            // [out]
        var cb = (w * (127.0f / scb).unsqueeze(1)).round().to_type(ScalarType.Int8);  // [out, in]
        return (cb.MoveToOuterDisposeScope(), scb.MoveToOuterDisposeScope());
    }

    /// <summary>CB · SCB / 127 in float32, cast to <paramref name="dtype"/> [out, in] (bnb <c>int8_vectorwise_dequant</c>). Caller owns it.</summary>
    public static Tensor Dequantize(Tensor cb, Tensor scb, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var w = cb.to_type(ScalarType.Float32) * (scb * (1.0f / 127.0f)).unsqueeze(1);
        return w.to_type(dtype).MoveToOuterDisposeScope();
    }
}
