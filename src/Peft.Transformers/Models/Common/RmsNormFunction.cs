using Peft.Core.Torch;
using Peft.Core.Torch.Cuda;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Peft.Transformers.Models;

/// <summary>
/// HF <c>LlamaRMSNorm</c>'s forward and backward as one fused CUDA kernel each (<see cref="FusedKernels"/>), as one
/// autograd node. Forward: out = w · round(x · rsqrt(mean(x²) + eps)) with x upcast to float32 and the same rounding
/// points as the eager chain; it saves x, w and the per-row rsqrt (float32 [rows]) instead of the float32 [rows, H]
/// temporaries autograd would keep. Backward: grad x as autograd of the eager chain computes it (the row sum in
/// another order), grad w only when w requires grad (full fine-tuning).
/// </summary>
internal sealed class RmsNormFunction : SingleTensorFunction<RmsNormFunction>
{
    private const string NeedsKey = "needs";

    /// <inheritdoc />
    public override string Name => nameof(RmsNormFunction);

    /// <summary>
    /// x [..., H], w [H] (CUDA, one dtype; <see cref="FusedKernels.Applies"/> checked by the caller) → [..., H] in x's
    /// dtype. Without autograd (no grad mode, or neither input requires grad) the forward kernel runs alone.
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor w, double eps)
    {
        if (x.dim() == 0 || w.dim() != 1 || w.shape[0] != x.shape[^1])
            throw new ArgumentException($"RMSNorm needs x [..., H] and weight [H]; got [{string.Join(", ", x.shape)}] and [{string.Join(", ", w.shape)}].");
        bool needX = x.requires_grad, needW = w.requires_grad;
        using var scope = NewDisposeScope();
        var xc = x.contiguous();
        var wc = w.contiguous();
        if (!is_grad_enabled() || !(needX || needW))
        {
            var (output, rstd) = FusedKernels.RmsNormForward(xc, wc, eps);
            rstd.Dispose();
            return output.MoveToOuterDisposeScope();
        }
        return apply(xc, wc, eps, (needX, needW)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var w = (Tensor)vars[1];
        var (output, rstd) = FusedKernels.RmsNormForward(x, w, (double)vars[2]);
        ctx.save_for_backward([x, w, rstd]);   // the wrappers must live until apply has saved them: rstd joins the caller's scope
        ctx.save_data(NeedsKey, vars[3]);
        ctx.set_materialize_grads(false);
        return output;
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        var result = new List<Tensor> { null!, null!, null!, null! };   // one per apply argument: x, w, eps, needs
        if (grad_output is null || grad_output.IsInvalid) return result;
        using var scope = NewDisposeScope();
        var saved = ctx.get_saved_variables();
        var (x, w, rstd) = (saved[0], saved[1], saved[2]);
        var (needX, needW) = ((bool, bool))ctx.get_data(NeedsKey);
        var g = grad_output.contiguous();
        if (needX) result[0] = FusedKernels.RmsNormBackwardInput(g, x, w, rstd).MoveToOuterDisposeScope();
        if (needW) result[1] = FusedKernels.RmsNormBackwardWeight(g, x, rstd).MoveToOuterDisposeScope();
        return BackwardHandOver.Finish(result, grad_output);   // no owner on the engine's thread: see BackwardHandOver
    }
}
