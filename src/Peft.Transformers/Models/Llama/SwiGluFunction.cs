using Peft.Core.Torch;
using Peft.Core.Torch.Cuda;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Peft.Transformers.Models.Llama;

/// <summary>
/// HF <c>LlamaMLP</c>'s <c>act_fn(gate) * up</c> with silu as one fused CUDA kernel forward and one backward
/// (<see cref="FusedKernels"/>), one autograd node. Bit-identical to the eager ops (pure elementwise, the same
/// rounding points); saves gate and up (which the eager chain saves too) and recomputes silu in the backward instead
/// of keeping silu(gate).
/// </summary>
internal sealed class SwiGluFunction : SingleTensorFunction<SwiGluFunction>
{
    private const string NeedsKey = "needs";

    /// <inheritdoc />
    public override string Name => nameof(SwiGluFunction);

    /// <summary>
    /// gate, up [..., F] (same shape, CUDA, one dtype; <see cref="FusedKernels.Applies"/> checked by the caller) →
    /// silu(gate) · up [..., F]. Without autograd the forward kernel runs alone.
    /// </summary>
    public static Tensor Apply(Tensor gate, Tensor up)
    {
        if (!gate.shape.SequenceEqual(up.shape))
            throw new ArgumentException($"SwiGLU needs gate and up of one shape; got [{string.Join(", ", gate.shape)}] and [{string.Join(", ", up.shape)}].");
        bool needGate = gate.requires_grad, needUp = up.requires_grad;
        using var scope = NewDisposeScope();
        var g = gate.contiguous();
        var u = up.contiguous();
        if (!is_grad_enabled() || !(needGate || needUp)) return FusedKernels.SwiGluForward(g, u).MoveToOuterDisposeScope();
        return apply(g, u, (needGate, needUp)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var gate = (Tensor)vars[0];
        var up = (Tensor)vars[1];
        ctx.save_for_backward([gate, up]);
        ctx.save_data(NeedsKey, vars[2]);
        ctx.set_materialize_grads(false);
        return FusedKernels.SwiGluForward(gate, up);
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        var result = new List<Tensor> { null!, null!, null! };   // one per apply argument: gate, up, needs
        if (grad_output is null || grad_output.IsInvalid) return result;
        using var scope = NewDisposeScope();
        var saved = ctx.get_saved_variables();
        var (needGate, needUp) = ((bool, bool))ctx.get_data(NeedsKey);
        var (dGate, dUp) = FusedKernels.SwiGluBackward(grad_output.contiguous(), saved[0], saved[1]);
        if (needGate) result[0] = dGate.MoveToOuterDisposeScope();
        if (needUp) result[1] = dUp.MoveToOuterDisposeScope();
        return BackwardHandOver.Finish(result, grad_output);   // no owner on the engine's thread: see BackwardHandOver
    }
}
