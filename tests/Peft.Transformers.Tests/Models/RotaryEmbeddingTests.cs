using Peft.Transformers.Models.Llama;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Models;

/// <summary>
/// <c>RotaryEmbedding.Apply</c> with the per-forward tables of <c>CosSin</c> (cos and a half-negated sin,
/// <c>roll</c> instead of <c>rotate_half</c>) gives, bit for bit, HF's <c>x · cos + rotate_half(x) · sin</c> computed
/// the HF way in the test — full and partial rotary (the fixtures have no partial-rotary model), float32 and bfloat16,
/// in the [B, H, T, D] layout and in the grouped decode layout [B, Hkv, H/Hkv, D].
/// </summary>
public sealed class RotaryEmbeddingTests
{
    [Theory]
    [InlineData(16, 16, ScalarType.Float32)]
    [InlineData(16, 8, ScalarType.Float32)]
    [InlineData(16, 16, ScalarType.BFloat16)]
    [InlineData(32, 12, ScalarType.BFloat16)]
    public void Apply_equals_hf_rotate_half_bitwise(int headDim, int rotaryDim, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator(7);
        var x = randn([2, 4, 5, headDim], generator: gen).to_type(dtype);                            // [B, H, T, D]
        var positions = arange(3L, 8L, dtype: ScalarType.Int64).unsqueeze(0).expand(2, 5);            // [B, T]
        var invFreq = exp(arange(0L, rotaryDim, 2L, dtype: ScalarType.Int64).to_type(ScalarType.Float32).mul(-Math.Log(10000.0) / rotaryDim)); // [R/2]

        var (cos, signedSin) = RotaryEmbedding.CosSin(positions, invFreq, dtype, rotaryDim);
        var actual = RotaryEmbedding.Apply(x, cos, signedSin, rotaryDim, headDim);

        var expected = HfRotary(x, positions, invFreq, dtype, rotaryDim, headDim);
        Assert.True(BitEqual(expected, actual), $"rotary D={headDim} D_rot={rotaryDim} {dtype}: differs from HF's rotate_half form");
    }

    [Fact]
    public void Grouped_decode_layout_equals_the_head_layout_bitwise()
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator(11);
        long b = 2, h = 8, hkv = 2, d = 16;
        var projected = randn([b, 1, h * d], generator: gen);                                          // one new token
        var positions = full([b, 1], 9L, dtype: ScalarType.Int64);
        var invFreq = exp(arange(0L, d, 2L, dtype: ScalarType.Int64).to_type(ScalarType.Float32).mul(-Math.Log(10000.0) / d));
        var (cos, signedSin) = RotaryEmbedding.CosSin(positions, invFreq, ScalarType.Float32, d);
        var grouped = RotaryEmbedding.Apply(projected.view(b, hkv, h / hkv, d), cos, signedSin, d, d);  // [B, Hkv, H/Hkv, D]
        var heads = RotaryEmbedding.Apply(projected.view(b, 1, h, d).transpose(1, 2), cos, signedSin, d, d); // [B, H, 1, D]
        Assert.True(BitEqual(heads.reshape(b, h * d), grouped.reshape(b, h * d)), "grouped layout differs from [B, H, 1, D]");
    }

    // HF apply_rotary_pos_emb as written in transformers: emb = cat(freqs, freqs); x · cos + cat(−x₂, x₁) · sin.
    private static Tensor HfRotary(Tensor x, Tensor positions, Tensor invFreq, ScalarType dtype, long rot, long d)
    {
        var freqs = positions.to_type(ScalarType.Float32).unsqueeze(-1) * invFreq.unsqueeze(0).unsqueeze(0);
        var emb = cat([freqs, freqs], -1);
        var cos = emb.cos().to_type(dtype).unsqueeze(1);
        var sin = emb.sin().to_type(dtype).unsqueeze(1);
        var xr = x.narrow(-1, 0, rot);
        long half = rot / 2;
        var rotated = cat([xr.narrow(-1, half, half).neg(), xr.narrow(-1, 0, half)], -1);
        var y = xr * cos + rotated * sin;
        return rot == d ? y : cat([y, x.narrow(-1, rot, d - rot)], -1);
    }

    private static bool BitEqual(Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape) || a.dtype != b.dtype) return false;
        var (x, y) = (a.to_type(ScalarType.Float32).contiguous().data<float>().ToArray(), b.to_type(ScalarType.Float32).contiguous().data<float>().ToArray());
        for (int i = 0; i < x.Length; i++)
            if (BitConverter.SingleToInt32Bits(x[i]) != BitConverter.SingleToInt32Bits(y[i])) return false;
        return true;
    }
}
