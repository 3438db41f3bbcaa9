using Peft.Core.Torch;
using Peft.Core.Torch.Cuda;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Peft.Core.Tuners;

/// <summary>
/// The tail of PEFT's <c>lora.Linear.forward</c> with float32 adapters, on CUDA, as one fused kernel forward and one
/// backward (<see cref="FusedKernels.LoraTailForward"/>), one autograd node:
/// <c>result = result + h * scaling; result = result.to(torch_result_dtype)</c> →
/// <c>round(float(result) + round32(h · s))</c>, exactly PEFT's two float32 roundings and the cast (torch's one-kernel
/// <c>add(h, alpha: s)</c> contracts to an FMA on CUDA). Backward: grad result = g, grad h = float(g) · s (float32).
/// Saves nothing. Plain LoRA dispatches it without autograd (one kernel, no node) and for float32 results with a scale
/// that is not a power of two; a half result under autograd takes the in-place native add instead (the node's host cost
/// outweighed its saved kernel on host-bound steps; docs/ARCHITECTURE.md).
/// </summary>
internal sealed class LoraTailFunction : SingleTensorFunction<LoraTailFunction>
{
    private const string ScalingKey = "scaling";
    private const string NeedsKey = "needs";

    /// <summary>The kernel family name for <see cref="FusedKernels.EnabledFor"/>.</summary>
    public const string Family = "lora_tail";

    /// <inheritdoc />
    public override string Name => nameof(LoraTailFunction);

    /// <summary>
    /// result [..., out] (the base output: bfloat16, float16 or float32), h [..., out] float32 (B(A(x))), both CUDA
    /// (<see cref="FusedKernels.AppliesWithFloat32"/> checked by the caller) → [..., out] in result's dtype.
    /// </summary>
    public static Tensor Apply(Tensor result, Tensor h, double scaling)
    {
        if (!result.shape.SequenceEqual(h.shape))
            throw new ArgumentException($"LoRA tail needs result and h of one shape; got [{string.Join(", ", result.shape)}] and [{string.Join(", ", h.shape)}].");
        using var scope = NewDisposeScope();
        var r = result.contiguous();
        var hc = h.contiguous();
        if (!is_grad_enabled() || !(result.requires_grad || h.requires_grad))
            return FusedKernels.LoraTailForward(r, hc, scaling).MoveToOuterDisposeScope();
        return apply(r, hc, scaling, (result.requires_grad, h.requires_grad)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        double s = (double)vars[2];
        ctx.save_data(ScalingKey, s);
        ctx.save_data(NeedsKey, vars[3]);
        ctx.set_materialize_grads(false);
        return FusedKernels.LoraTailForward((Tensor)vars[0], (Tensor)vars[1], s);
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        var result = new List<Tensor> { null!, null!, null!, null! };   // one per apply argument: result, h, scaling, needs
        if (grad_output is null || grad_output.IsInvalid) return result;
        using var scope = NewDisposeScope();
        var (needResult, needH) = ((bool, bool))ctx.get_data(NeedsKey);
        var g = grad_output.contiguous();
        if (needResult) result[0] = g.detach().MoveToOuterDisposeScope();                   // the add's and the cast's grad: g itself
        if (needH) result[1] = FusedKernels.LoraTailBackward(g, (double)ctx.get_data(ScalingKey)).MoveToOuterDisposeScope();
        return BackwardHandOver.Finish(result, grad_output);   // no owner on the engine's thread: see BackwardHandOver
    }
}
