using static TorchSharp.torch;

namespace Peft.Transformers.Models;

/// <summary>
/// The head layout of one attention call, read once from the input's shape and kept on the host, so splitting the
/// projections into heads and merging the attention output back needs no metadata reads: B, T, the query and
/// key/value head counts and the head size. For one new token (decoding) the projections are split with a single
/// <c>view</c> (for T = 1, [B, 1, H·D] and [B, H, 1, D] share one memory order, so the <c>transpose</c> HF does is not
/// needed), and, without dropout, the queries take the grouped layout [B, Hkv, H/Hkv, D]: grouped-query attention
/// then reads the cache in place (the H/Hkv query heads of one KV head become that many query rows) instead of
/// expanding it. The values are the same as HF's <c>view → transpose → repeat_kv → SDPA → transpose → reshape</c>.
/// </summary>
/// <param name="Batch">B.</param>
/// <param name="Length">T, the new tokens.</param>
/// <param name="Heads">H, query heads.</param>
/// <param name="KvHeads">Hkv, key/value heads (divides H).</param>
/// <param name="HeadDim">D.</param>
/// <param name="Dropout">The attention dropout probability of this call (0 in eval).</param>
internal readonly record struct HeadLayout(long Batch, long Length, long Heads, long KvHeads, long HeadDim, double Dropout)
{
    /// <summary>
    /// The layout of <paramref name="x"/> [B, T, hidden]: (B, T) from <paramref name="known"/> when the caller has
    /// them on the host (the layer loop passes them), else one shape read.
    /// </summary>
    public static HeadLayout Of(Tensor x, (long B, long T)? known, long heads, long kvHeads, long headDim, double dropout)
    {
        if (known is { } bt) return new HeadLayout(bt.B, bt.T, heads, kvHeads, headDim, dropout);
        var s = x.shape;
        return new HeadLayout(s[0], s[1], heads, kvHeads, headDim, dropout);
    }

    /// <summary>Queries in the grouped decode layout [B, Hkv, H/Hkv, D] (one token, no dropout).</summary>
    public bool Grouped => Length == 1 && Dropout == 0;

    /// <summary>
    /// Projected queries [B, T, H·D] → [B, H, T, D], or [B, Hkv, H/Hkv, D] when <see cref="Grouped"/> (a view either
    /// way for T = 1). Elementwise ops with [B, 1, T, D] tables (rotary) broadcast over both.
    /// </summary>
    public Tensor Queries(Tensor projected) =>
        Grouped ? projected.view(Batch, KvHeads, Heads / KvHeads, HeadDim)                   // [B, Hkv, H/Hkv, D]
        : Split(projected, Heads);                                                           // [B, H, T, D]

    /// <summary>Projected keys or values [B, T, Hkv·D] → [B, Hkv, T, D].</summary>
    public Tensor KeysOrValues(Tensor projected) => Split(projected, KvHeads);

    private Tensor Split(Tensor projected, long heads) =>
        Length == 1 ? projected.view(Batch, heads, 1, HeadDim)                                // [B, H, 1, D]
        : projected.view(Batch, Length, heads, HeadDim).transpose(1, 2);                    // [B, H, T, D]

    /// <summary>
    /// Appends this call's keys / values [B, Hkv, T, D] (from <see cref="KeysOrValues"/>) to layer
    /// <paramref name="layer"/> of <paramref name="cache"/> and returns the layer's whole keys / values
    /// [B, Hkv, past + T, D] (owned by the cache); the shapes come from this layout, not from the tensors.
    /// </summary>
    public (Tensor Key, Tensor Value) Append(Peft.Core.KeyValueCache cache, int layer, Tensor k, Tensor v)
    {
        long[] shape = [Batch, KvHeads, Length, HeadDim];
        return cache.Update(layer, k, v, shape, shape);
    }

    /// <summary>
    /// Scaled dot-product attention of <paramref name="q"/> (from <see cref="Queries"/>) over <paramref name="k"/> /
    /// <paramref name="v"/> [B, Hkv, S, D]; <paramref name="mask"/> additive [B|1, 1, T, S] or null. With
    /// <paramref name="causal"/> and no mask, T = S &gt; 1 runs SDPA's <c>is_causal</c> path (see
    /// <see cref="ModelOps.CausalMask"/>); otherwise null means every key is visible. Returns [B, T, H·D].
    /// </summary>
    public Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? mask, bool causal)
    {
        long b = Batch, t = Length, h = Heads, d = HeadDim, hkv = KvHeads;
        if (Grouped)
        {
            var grouped = nn.functional.scaled_dot_product_attention(q, k, v, mask, 0.0);   // [B, Hkv, H/Hkv, D]
            return grouped.reshape(b, 1, h * d);                                               // [B, T=1, H·D]
        }
        bool isCausal = false;
        if (hkv != h || (causal && mask is null && t > 1))
        {
            long s = k.shape[2];
            isCausal = causal && mask is null && t > 1 && t == s;
            if (hkv != h)
            {
                long rep = h / hkv;
                k = k.unsqueeze(2).expand(b, hkv, rep, s, d).reshape(b, h, s, d);            // [B, H, S, D]
                v = v.unsqueeze(2).expand(b, hkv, rep, s, d).reshape(b, h, s, d);
            }
        }
        var o = nn.functional.scaled_dot_product_attention(q, k, v, mask, Dropout, isCausal); // [B, H, T, D]
        return t == 1 ? o.reshape(b, 1, h * d)                                                 // [B, 1, H·D]
            : o.transpose(1, 2).reshape(b, t, h * d);                                          // [B, T, H·D]
    }
}
