using Peft.Core.Torch;
using Peft.Core.Torch.Cuda;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Peft.Transformers.Models.Llama;

/// <summary>
/// HF <c>apply_rotary_pos_emb</c> on q and k of one layer as one fused CUDA kernel forward and one backward
/// (<see cref="FusedKernels.Rotary"/>), one autograd node. Bit-identical to the eager chain of
/// <see cref="RotaryEmbedding.Apply"/> (pure elementwise, the same rounding points). Reads q and k through their
/// strides (the transposed projection views, no copy) and writes both outputs, and both input gradients, in the
/// projection's [B, T, H, D] memory order, so neither the attention's inputs nor the projections' gradients need a
/// copy. Saves only the tables.
/// </summary>
internal sealed class RotaryFunction : MultiTensorFunction<RotaryFunction>
{
    private const string NeedsKey = "needs";

    /// <summary>The kernel family name for <see cref="FusedKernels.EnabledFor"/>.</summary>
    public const string Family = "rotary";

    /// <inheritdoc />
    public override string Name => nameof(RotaryFunction);

    /// <summary>
    /// True when the fused kernel takes these tensors: q [B, Hq, T, D] and k [B, Hk, T, D], cos / signedSin
    /// [B or 1, 1, T, D] (full rotary: D_rot = D, D even), unit stride on D everywhere, all CUDA in one dtype with the
    /// kernels available (<see cref="FusedKernels.Applies"/>).
    /// </summary>
    public static bool Fits(Tensor q, Tensor k, Tensor cos, Tensor signedSin)
    {
        if (q.dim() != 4 || k.dim() != 4 || cos.dim() != 4 || signedSin.dim() != 4) return false;
        long b = q.shape[0], t = q.shape[2], d = q.shape[3];
        if (k.shape[0] != b || k.shape[2] != t || k.shape[3] != d || d % 2 != 0) return false;
        foreach (var table in new[] { cos, signedSin })
        {
            long tb = table.shape[0];
            if ((tb != b && tb != 1) || table.shape[1] != 1 || table.shape[2] != t || table.shape[3] != d) return false;
        }
        if (q.stride(3) != 1 || k.stride(3) != 1 || cos.stride(3) != 1 || signedSin.stride(3) != 1) return false;
        return FusedKernels.Applies(q, k, cos, signedSin);
    }

    /// <summary>
    /// (q, k) → (q·cos + rotate_half(q)·sin, the same for k), [B, Hq, T, D] / [B, Hk, T, D] views of contiguous
    /// [B, T, H, D] tensors; <see cref="Fits"/> checked by the caller. Without autograd the forward kernel runs alone.
    /// </summary>
    public static (Tensor Q, Tensor K) Apply(Tensor q, Tensor k, Tensor cos, Tensor signedSin)
    {
        if (!is_grad_enabled() || !(q.requires_grad || k.requires_grad))
            return FusedKernels.Rotary(q, k, cos, signedSin, backward: false);
        using var scope = NewDisposeScope();
        var outputs = apply(q, k, cos.detach(), signedSin.detach(), (q.requires_grad, k.requires_grad));
        return (outputs[0].MoveToOuterDisposeScope(), outputs[1].MoveToOuterDisposeScope());
    }

    /// <inheritdoc />
    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        var (q, k, cos, sin) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2], (Tensor)vars[3]);
        ctx.save_for_backward([cos, sin]);
        ctx.save_data(NeedsKey, vars[4]);
        var (oq, ok) = FusedKernels.Rotary(q, k, cos, sin, backward: false);
        return [oq, ok];
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> grad_outputs)
    {
        var result = new List<Tensor> { null!, null!, null!, null!, null! };   // one per apply argument: q, k, cos, sin, needs
        using var scope = NewDisposeScope();
        var saved = ctx.get_saved_variables();
        var gq = grad_outputs[0].stride(3) == 1 ? grad_outputs[0] : grad_outputs[0].contiguous();
        var gk = grad_outputs[1].stride(3) == 1 ? grad_outputs[1] : grad_outputs[1].contiguous();
        var (dq, dk) = FusedKernels.Rotary(gq, gk, saved[0], saved[1], backward: true);
        var (needQ, needK) = ((bool, bool))ctx.get_data(NeedsKey);
        if (needQ) result[0] = dq.MoveToOuterDisposeScope();
        if (needK) result[1] = dk.MoveToOuterDisposeScope();   // k_proj without an adapter in layer 0: no grad wanted
        return BackwardHandOver.Finish(result, [.. grad_outputs]);   // no owner on the engine's thread: see BackwardHandOver
    }
}
