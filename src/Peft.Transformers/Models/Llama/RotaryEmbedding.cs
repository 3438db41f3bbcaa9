using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Models.Llama;

/// <summary>
/// Rotary position embedding (HF <c>LlamaRotaryEmbedding</c> + <c>apply_rotary_pos_emb</c>) with the "default",
/// "linear" and "llama3" frequency schedules. Stateless: the inverse frequencies are recomputed (float32) per call.
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
                var smoothed = (HeldScalars.Of(1) - smooth) * llama / HeldScalars.Of(factor) + smooth * llama;
                var medium = wavelen.lt(HeldScalars.Of(highWavelen)).logical_not().logical_and(wavelen.gt(HeldScalars.Of(lowWavelen)).logical_not());
                inv = where(medium, smoothed, llama);
                break;
            }
            default:
                throw new NotSupportedException($"{c.ModelType}: rope_type '{scaling!.Type}' is not supported (default, linear, llama3).");
        }
        return inv.MoveToOuterDisposeScope();
    }

    /// <summary>cos and sin [B, T, D_rot] in <paramref name="dtype"/> for position ids [B, T].</summary>
    public static (Tensor Cos, Tensor Sin) CosSin(Tensor positionIds, Tensor invFreq, ScalarType dtype)
    {
        var freqs = positionIds.to_type(ScalarType.Float32).unsqueeze(-1) * invFreq.unsqueeze(0).unsqueeze(0); // [B, T, D/2]
        var emb = cat([freqs, freqs], -1);                                                                     // [B, T, D]
        return (emb.cos().to_type(dtype), emb.sin().to_type(dtype));
    }

    /// <summary>Rotates x [B, H, T, D] by cos/sin [B, T, D_rot] (HF <c>apply_rotary_pos_emb</c>, partial rotary supported).</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long rot = cos.shape[^1];
        long d = x.shape[^1];
        var c = cos.unsqueeze(1);   // [B, 1, T, D_rot]
        var s = sin.unsqueeze(1);
        var xr = rot == d ? x : x.narrow(-1, 0, rot);
        var half = rot / 2;
        var rotated = cat([xr.narrow(-1, half, half).neg(), xr.narrow(-1, 0, half)], -1);  // rotate_half
        var y = xr * c + rotated * s;
        return rot == d ? y : cat([y, x.narrow(-1, rot, d - rot)], -1);
    }
}
