using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Peft.Transformers.Models;

/// <summary>
/// Identity in forward (an alias of the input); in backward it disposes the handles a <see cref="GradientHandoff"/>
/// holds and passes the gradient through. Placed on the input of the module that consumes a custom node's gradient
/// (the LM head's hidden states, below the loss), its backward runs right after that module's backward, which is the
/// earliest point where the handed-over gradient is no longer needed.
/// </summary>
internal sealed class GradientReleaseFunction : SingleTensorFunction<GradientReleaseFunction>
{
    private const string HandoffKey = "handoff";

    /// <inheritdoc />
    public override string Name => nameof(GradientReleaseFunction);

    /// <summary><paramref name="x"/> (any shape, requires grad) → an alias of it whose backward releases <paramref name="handoff"/>.</summary>
    public static Tensor Apply(Tensor x, GradientHandoff handoff) => apply(x, handoff);

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        ctx.save_data(HandoffKey, vars[1]);
        return ((Tensor)vars[0]).alias();
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        ((GradientHandoff)ctx.get_data(HandoffKey)).Dispose();
        return [grad_output, null!];
    }
}
