using static TorchSharp.torch;
using Peft.Core.Torch;
using Peft.Core.Torch.Cuda;

namespace Peft.Transformers.Models.Llama;

/// <summary>
/// Rotary position embedding (HF <c>LlamaRotaryEmbedding</c> + <c>apply_rotary_pos_emb</c>) with the "default",
/// "linear" and "llama3" frequency schedules. Stateless (the model caches the inverse frequencies per device).
/// </summary>
internal static class RotaryEmbedding
{
    /// <summary>Inverse frequencies [D_rot / 2], float32 (HF <c>ROPE_INIT_FUNCTIONS[rope_type]</c>).</summary>
    public static Tensor InvFreq(RotaryDecoderConfig c, Device device)
    {
        var scaling = c.EffectiveRopeScaling;
        int dim = (int)(c.HeadDim * (scaling?.PartialRotaryFactor ?? 1.0));
        using var scope = NewDisposeScope();
        var exponent = arange(HeldScalars.Of(0), HeldScalars.Of(dim), HeldScalars.Of(2), dtype: ScalarType.Int64, device: device).to_type(ScalarType.Float32) / HeldScalars.Of(dim);
        var inv = HeldScalars.Of(1.0) / pow(tensor((float)c.EffectiveRopeTheta, dtype: ScalarType.Float32, device: device), exponent);
        switch (scaling?.Type ?? "default")
        {
            case "default":
                break;
            case "linear":
                inv = inv / HeldScalars.Of((scaling!.Factor ?? throw new ArgumentException($"{c.ModelType}: rope_type 'linear' needs 'factor'.")));
                break;
            case "llama3":
            {
                double factor = scaling!.Factor ?? throw new ArgumentException($"{c.ModelType}: rope_type 'llama3' needs 'factor'.");
                double low = scaling.LowFreqFactor ?? throw new ArgumentException($"{c.ModelType}: rope_type 'llama3' needs 'low_freq_factor'.");
                double high = scaling.HighFreqFactor ?? throw new ArgumentException($"{c.ModelType}: rope_type 'llama3' needs 'high_freq_factor'.");
                double old = scaling.OriginalMaxPositionEmbeddings ?? throw new ArgumentException($"{c.ModelType}: rope_type 'llama3' needs 'original_max_position_embeddings'.");
                double lowWavelen = old / low, highWavelen = old / high;
                var wavelen = HeldScalars.Of(2 * Math.PI) / inv;
                var llama = where(wavelen.gt(HeldScalars.Of(lowWavelen)), inv / HeldScalars.Of(factor), inv);
                var smooth = (HeldScalars.Of(old) / wavelen - HeldScalars.Of(low)) / HeldScalars.Of((high - low));
                var smoothed = ((HeldScalars.Of(1) - smooth) * llama / HeldScalars.Of(factor)).add(smooth * llama, HeldScalars.One);
                var medium = wavelen.lt(HeldScalars.Of(highWavelen)).logical_not().logical_and(wavelen.gt(HeldScalars.Of(lowWavelen)).logical_not());
                inv = where(medium, smoothed, llama);
                break;
            }
            default:
                throw new NotSupportedException($"{c.ModelType}: rope_type '{scaling!.Type}' is not supported (default, linear, llama3).");
        }
        return inv.MoveToOuterDisposeScope();
    }

    /// <summary>D_rot: the rotated leading part of each head (2 · the number of inverse frequencies; = D without partial rotary).</summary>
    public static int RotaryDim(RotaryDecoderConfig c)
    {
        int dim = (int)(c.HeadDim * (c.EffectiveRopeScaling?.PartialRotaryFactor ?? 1.0));
        return 2 * ((dim + 1) / 2);
    }

    /// <summary>
    /// The rotary tables of one forward for position ids [B, T], both [B, 1, T, D_rot] in <paramref name="dtype"/> (the
    /// head axis already there, so no layer unsqueezes them): cos, and sin with its first half negated — HF's
    /// <c>rotate_half(x) · sin</c> = <c>cat(−x₂, x₁) · sin</c> equals <c>roll(x, D_rot/2) · cat(−sin₁, sin₂)</c>
    /// exactly (a sign flip commutes with rounding), which <see cref="Apply"/> computes with one <c>roll</c> instead
    /// of two narrows, a neg and a cat per q and k of every layer. cos/sin themselves are computed as HF's.
    /// </summary>
    public static (Tensor Cos, Tensor SignedSin) CosSin(Tensor positionIds, Tensor invFreq, ScalarType dtype, long rotaryDim)
    {
        var freqs = positionIds.to_type(ScalarType.Float32).unsqueeze(-1) * invFreq.unsqueeze(0).unsqueeze(0); // [B, T, D/2]
        var emb = cat([freqs, freqs], -1).unsqueeze(1);                                                        // [B, 1, T, D]
        var cos = emb.cos();
        var sin = emb.sin();
        if (dtype != ScalarType.Float32)
        {
            cos = cos.to_type(dtype);
            sin = sin.to_type(dtype);
        }
        long half = rotaryDim / 2;
        var signedSin = cat([sin.narrow(-1, 0, half).neg(), sin.narrow(-1, half, half)], -1);                  // [B, 1, T, D]
        return (cos, signedSin);
    }

    /// <summary>
    /// <see cref="Apply"/> on q and k of one layer: on CUDA with full rotary one fused kernel for both
    /// (<see cref="RotaryFunction"/>, bit-identical; the outputs in the projections' [B, T, H, D] memory order),
    /// otherwise the eager chain on each.
    /// </summary>
    public static (Tensor Q, Tensor K) ApplyPair(Tensor q, Tensor k, Tensor cos, Tensor signedSin, long rotaryDim, long headDim)
    {
        if (rotaryDim == headDim && FusedKernels.EnabledFor(RotaryFunction.Family) && RotaryFunction.Fits(q, k, cos, signedSin)) return RotaryFunction.Apply(q, k, cos, signedSin);
        return (Apply(q, cos, signedSin, rotaryDim, headDim), Apply(k, cos, signedSin, rotaryDim, headDim));
    }

    /// <summary>
    /// Rotates x [B, H, T, D] (or the grouped decode layout [B, Hkv, H/Hkv, D] with T = 1) by the tables of
    /// <see cref="CosSin"/> [B, 1, T, D_rot] (HF <c>apply_rotary_pos_emb</c>: <c>x · cos + rotate_half(x) · sin</c>,
    /// the same products and sum; partial rotary supported). <paramref name="rotaryDim"/> and <paramref name="headDim"/>
    /// are the host-known D_rot and D.
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor signedSin, long rotaryDim, long headDim)
    {
        var xr = rotaryDim == headDim ? x : x.narrow(-1, 0, rotaryDim);
        var y = xr.mul(cos).add(xr.roll(rotaryDim / 2, -1).mul(signedSin), HeldScalars.One);   // x·cos + rotate_half(x)·sin
        return rotaryDim == headDim ? y : cat([y, x.narrow(-1, rotaryDim, headDim - rotaryDim)], -1);
    }
}
