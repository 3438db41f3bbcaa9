using Peft.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Models;

/// <summary>Small functions the architectures share: activations, masks, positions, attention, losses, init.</summary>
internal static class ModelOps
{
    /// <summary>The device of the first of <paramref name="parameters"/>, or null when there are none.</summary>
    public static Device? DeviceOf(IEnumerable<TorchSharp.Modules.Parameter> parameters)
    {
        foreach (var p in parameters) return p.device;
        return null;
    }

    /// <summary>Whether two devices are the same (type and index).</summary>
    public static bool SameDevice(Device a, Device b) => a.type == b.type && a.index == b.index;

    /// <summary>
    /// Moves every distinct tensor of <paramref name="o"/> to the enclosing dispose scope exactly once (a tensor that
    /// appears twice, e.g. the last hidden state inside the hidden-states list, must not be moved two levels up).
    /// </summary>
    public static ModelOutput MoveOut(ModelOutput o)
    {
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        void Move(Tensor? t)
        {
            if (t is not null && seen.Add(t)) t.MoveToOuterDisposeScope();
        }
        Move(o.Logits); Move(o.Loss); Move(o.LastHiddenState); Move(o.PoolerOutput); Move(o.StartLogits); Move(o.EndLogits);
        if (o.HiddenStates is not null) foreach (var h in o.HiddenStates) Move(h);
        return o;
    }

    /// <summary>HF <c>ACT2FN[name]</c> for the activations these models use.</summary>
    public static Func<Tensor, Tensor> Activation(string name) => name switch
    {
        "gelu" => x => nn.functional.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => x => nn.functional.gelu(x, GELU.Approximate.tanh),
        "relu" => x => nn.functional.relu(x),
        "silu" or "swish" => x => nn.functional.silu(x),
        "tanh" => x => x.tanh(),
        _ => throw new NotSupportedException($"activation function '{name}' is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu, silu, tanh)."),
    };

    /// <summary>
    /// Additive attention mask [B or 1, 1, T, past + T] for causal self-attention: 0 where query i (absolute position
    /// past + i) may see key j (j ≤ past + i and attention_mask[b, j] = 1), the dtype's minimum elsewhere.
    /// Rows with no visible key (padding queries) stay finite. With <paramref name="slidingWindow"/> w, query i sees
    /// only keys j &gt; past + i − w (HF's sliding-window overlay). Null when the plain causal rule is all there is to
    /// it, for <see cref="Attend"/> with <c>causal: true</c> to run SDPA's <c>is_causal</c> kernel path without a mask
    /// tensor (HF's <c>_ignore_causal_mask_sdpa</c>): one new token and no padding mask, or no cache prefix, no window
    /// cutting in, and an attention mask that is absent or all ones (checked on the host once per forward with T &gt; 1,
    /// as HF does; a single-token step never syncs; never under <see cref="HostReads.Forbid"/>, where a given mask always
    /// takes the mask path).
    /// </summary>
    public static Tensor? CausalMask(Tensor? attentionMask, long batch, long queryLen, long pastLen, ScalarType dtype, Device device, int? slidingWindow = null)
    {
        long keyLen = pastLen + queryLen;
        if (attentionMask is not null && attentionMask.shape[1] != keyLen)
            throw new ArgumentException($"attention_mask has length {attentionMask.shape[1]} but past ({pastLen}) + new ({queryLen}) = {keyLen} positions.");
        bool windowCutsIn = slidingWindow is { } sw && keyLen > sw;
        if (attentionMask is null && queryLen == 1 && !windowCutsIn) return null;
        if (pastLen == 0 && queryLen > 1 && !windowCutsIn && (attentionMask is null || (HostReads.Allowed && AllOnes(attentionMask)))) return null;
        using var scope = NewDisposeScope();
        var q = arange(HeldScalars.Of(pastLen), HeldScalars.Of(keyLen), dtype: ScalarType.Int64, device: device).unsqueeze(1);   // [T, 1]
        var k = arange(HeldScalars.Of(0), HeldScalars.Of(keyLen), dtype: ScalarType.Int64, device: device).unsqueeze(0);         // [1, S]
        var allowed = k.le(q);                                                                // [T, S]
        if (slidingWindow is { } w) allowed = allowed.logical_and(k.gt(q - HeldScalars.Of(w)));               // HF: kv_idx > q_idx − window
        allowed = allowed.unsqueeze(0);                                                       // [1, T, S]
        if (attentionMask is not null)
            allowed = allowed.logical_and(attentionMask.to(device).to_type(ScalarType.Bool).unsqueeze(1)); // [B, T, S]
        return Additive(allowed.unsqueeze(1), dtype).MoveToOuterDisposeScope();               // [B, 1, T, S]
    }

    private static bool AllOnes(Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        return attentionMask.ne(HeldScalars.Of(0)).all().item<bool>();
    }

    /// <summary>Additive padding mask [B, 1, 1, S] for bidirectional attention (BERT); null when no mask is given.</summary>
    public static Tensor? PaddingMask(Tensor? attentionMask, ScalarType dtype, Device device)
    {
        if (attentionMask is null) return null;
        using var scope = NewDisposeScope();
        var allowed = attentionMask.to(device).to_type(ScalarType.Bool).unsqueeze(1).unsqueeze(1);
        return Additive(allowed, dtype).MoveToOuterDisposeScope();
    }

    private static Tensor Additive(Tensor allowed, ScalarType dtype) =>
        zeros(allowed.shape, dtype: dtype, device: allowed.device).masked_fill(allowed.logical_not(), HeldScalars.Of(MaskMin(dtype)));

    /// <summary>The additive masks' "hidden" value: the dtype's minimum (HF <c>torch.finfo(dtype).min</c>).</summary>
    public static double MaskMin(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => -65504.0,
        ScalarType.BFloat16 => -3.3895313892515355e38,
        ScalarType.Float64 => double.MinValue,
        _ => float.MinValue,
    };

    /// <summary>
    /// Default position ids [B, T] of the new tokens when the caller passes none: <c>arange(past, past + T)</c> for
    /// every row, whatever the attention mask says (HF 5.x <c>position_ids = cache_position.unsqueeze(0)</c> in the
    /// Llama family and GPT-2). Left padding therefore shifts the positions of a plain forward, exactly as in HF;
    /// generation passes mask-derived positions explicitly (HF <c>prepare_inputs_for_generation</c>).
    /// </summary>
    public static Tensor DefaultPositionIds(long batch, long queryLen, long pastLen, Device device) =>
        arange(HeldScalars.Of(pastLen), HeldScalars.Of(pastLen + queryLen), dtype: ScalarType.Int64, device: device).unsqueeze(0).expand(batch, queryLen);

    /// <summary><see cref="DefaultPositionIds"/> as a <see cref="DefaultPositions"/> rule (GPT-2, the Llama family).</summary>
    public static Tensor ArangePositionIds(Tensor? attentionMask, long batch, long queryLen, long pastLen, Device device) =>
        DefaultPositionIds(batch, queryLen, pastLen, device);

    /// <summary>
    /// HF OPT's default positions: <c>(cumsum(mask) · mask − 1)[:, past:]</c> (padding → −1), or
    /// <c>arange(past, past + T)</c> without a mask. [B, T] int64.
    /// </summary>
    public static Tensor MaskDerivedPositionIds(Tensor? attentionMask, long batch, long queryLen, long pastLen, Device device)
    {
        if (attentionMask is null) return DefaultPositionIds(batch, queryLen, pastLen, device);
        var m = attentionMask.to(device).to_type(ScalarType.Int64);                  // [B, past + T]
        return (m.cumsum(1) * m - HeldScalars.Of(1)).narrow(1, pastLen, queryLen);                     // [B, T]
    }

    /// <summary>
    /// Scaled dot-product attention. q [B, H, T, D], k/v [B, Hkv, S, D] (Hkv divides H: grouped-query attention);
    /// <paramref name="mask"/> additive [B|1, 1, T, S] or null. With <paramref name="causal"/> (decoders) and no mask,
    /// T = S &gt; 1 runs SDPA's <c>is_causal</c> path (see <see cref="CausalMask"/>); otherwise null means every key is
    /// visible. Returns [B, T, H·D].
    /// </summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? mask, double dropout, bool causal = false)
    {
        var (qs, ks) = (q.shape, k.shape);
        long b = qs[0], h = qs[1], t = qs[2], d = qs[3];
        long hkv = ks[1];
        if (hkv != h && t == 1 && dropout == 0)
        {
            // One query per head (decoding): the rep query heads of a KV head become rep query rows over that head's
            // keys, so the cache is read in place instead of being expanded (a copy of the whole past per layer and step).
            long rep = h / hkv;
            var grouped = nn.functional.scaled_dot_product_attention(q.reshape(b, hkv, rep, d), k, v, mask, dropout); // [B, Hkv, rep, D]
            return grouped.reshape(b, 1, h * d);                                   // [B, T=1, H·D]
        }
        if (hkv != h)
        {
            long rep = h / hkv;
            long s = ks[2];
            k = k.unsqueeze(2).expand(b, hkv, rep, s, d).reshape(b, h, s, d);   // [B, H, S, D]
            v = v.unsqueeze(2).expand(b, hkv, rep, s, d).reshape(b, h, s, d);
        }
        bool isCausal = causal && mask is null && t > 1 && t == ks[2];
        var o = nn.functional.scaled_dot_product_attention(q, k, v, mask, dropout, isCausal);   // [B, H, T, D]
        return o.transpose(1, 2).reshape(b, t, h * d);                            // [B, T, H·D]
    }

    /// <summary>
    /// HF's causal LM loss (<c>ForCausalLMLoss</c>): logits in float32 against the labels shifted left by one and
    /// padded with −100, mean over labels ≠ −100 (NaN when there is none, as torch). As HF, the logits are not sliced:
    /// the last position's padded label is ignored, so neither the forward copies the logits nor the backward scatters
    /// into a zero-filled copy. Computed by <see cref="CrossEntropyFunction"/> (one [N, V] float32 buffer in backward,
    /// none saved from the forward). logits [B, T, V], labels [B, T] int64 → float32 scalar. <paramref name="handoff"/>:
    /// releases the loss's [B·T, V] gradient after the LM head's backward (<see cref="CausalHeads.HeadInput"/>).
    /// </summary>
    public static Tensor CausalLmLoss(Tensor logits, Tensor labels, GradientHandoff? handoff = null)
    {
        var shape = logits.shape;
        long v = shape[^1];
        var target = labels.to(logits.device);
        var shifted = cat([target.narrow(1, 1, shape[1] - 1), full([shape[0], 1], HeldScalars.Of(-100L), ScalarType.Int64, logits.device)], 1).reshape(-1); // [B·T]
        return CrossEntropyFunction.Apply(logits.reshape(-1, v), shifted, handoff);         // [B·T, V] → []
    }

    /// <summary>
    /// HF sequence-classification loss by <c>problem_type</c> (inferred as HF does when null): MSE for regression,
    /// cross-entropy for single-label, BCE-with-logits for multi-label. logits [B, C].
    /// </summary>
    public static Tensor ClassificationLoss(Tensor logits, Tensor labels, int numLabels, string? problemType)
    {
        labels = labels.to(logits.device);
        problemType ??= numLabels == 1 ? "regression"
            : labels.dtype is ScalarType.Int64 or ScalarType.Int32 ? "single_label_classification"
            : "multi_label_classification";
        var lf = logits.to_type(ScalarType.Float32);
        return problemType switch
        {
            "regression" => numLabels == 1
                ? nn.functional.mse_loss(lf.squeeze(), labels.to_type(ScalarType.Float32).squeeze())
                : nn.functional.mse_loss(lf, labels.to_type(ScalarType.Float32)),
            "single_label_classification" => nn.functional.cross_entropy(lf.view(-1, numLabels), labels.to_type(ScalarType.Int64).view(-1)),
            "multi_label_classification" => nn.functional.binary_cross_entropy_with_logits(lf, labels.to_type(ScalarType.Float32)),
            _ => throw new ArgumentException($"problem_type '{problemType}' is not one of regression, single_label_classification, multi_label_classification."),
        };
    }

    /// <summary>
    /// Token-level cross-entropy (token classification, masked LM; HF <c>CrossEntropyLoss()(logits.view(-1, C),
    /// labels.view(-1))</c>): logits [B, T, C], labels [B, T] int64 with −100 ignored → float32 scalar, by
    /// <see cref="CrossEntropyFunction"/>.
    /// </summary>
    public static Tensor TokenLoss(Tensor logits, Tensor labels)
    {
        long c = logits.shape[^1];
        return CrossEntropyFunction.Apply(logits.reshape(-1, c), labels.to(logits.device).reshape(-1)); // [B·T, C] → []
    }

    /// <summary>HF <c>_init_weights</c>: Linear/Embedding ~ N(0, std) (bias 0, padding row 0), LayerNorm/RMSNorm = 1/0.</summary>
    public static void InitWeights(nn.Module root, double std, Func<nn.Module, bool>? only = null)
    {
        using var _ = no_grad();
        foreach (var (_, m) in root.named_modules())
        {
            if (only is not null && !only(m)) continue;
            switch (m)
            {
                case Linear l:
                    l.weight.normal_(0, std);
                    l.bias?.zero_();
                    break;
                case Embedding e:
                    e.weight!.normal_(0, std);
                    break;
                case LayerNorm ln:
                    ln.weight?.fill_(HeldScalars.Of(1.0));
                    ln.bias?.zero_();
                    break;
                case RmsNorm rn:
                    rn.weight.fill_(HeldScalars.Of(1.0));
                    break;
                case Peft.Core.Modules.Conv1D c:
                    c.weight.normal_(0, std);
                    c.bias.zero_();
                    break;
            }
        }
    }

    /// <summary>Zeroes the padding row of an embedding (HF does this after init).</summary>
    public static void ZeroPaddingRow(Embedding e, int? paddingIdx)
    {
        if (paddingIdx is not { } p || p < 0 || p >= e.weight!.shape[0]) return;
        using var _ = no_grad();
        e.weight![p].zero_();
    }
}
