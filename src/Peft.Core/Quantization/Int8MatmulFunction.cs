using Peft.Core.Torch;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Peft.Core.Quantization;

/// <summary>
/// <see cref="Int8Matmul"/> as an autograd node (bnb <c>MatMul8bitLt</c>): the forward is the LLM.int8 product, the
/// input's gradient is grad · (CB cast to the input dtype · (SCB · 1/127)) as in bnb's backward (the activation
/// rounding is passed straight through); the frozen int8 weight and the bias get none.
/// </summary>
internal sealed class Int8MatmulFunction : SingleTensorFunction<Int8MatmulFunction>
{
    private const string LayerKey = "layer";

    private sealed record Weights(Tensor CB, Tensor SCB, Tensor? Bias, double Threshold);

    /// <inheritdoc />
    public override string Name => nameof(Int8MatmulFunction);

    /// <summary>a [N, in] → [N, out] in a's dtype, differentiable with respect to <paramref name="a"/>.</summary>
    public static Tensor Apply(Tensor a, Tensor cb, Tensor scb, Tensor? bias, double threshold) =>
        apply(new Weights(cb, scb, bias, threshold), a);

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var w = (Weights)vars[0];
        var a = (Tensor)vars[1];
        ctx.save_data(LayerKey, w);
        ctx.save_data("dtype", a.dtype);
        ctx.set_materialize_grads(false);
        return Int8Matmul.Forward(a, w.CB, w.SCB, w.Bias, w.Threshold);
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        var result = new List<Tensor> { null!, null! };
        if (grad_output is null || grad_output.IsInvalid) return result;
        var w = (Weights)ctx.get_data(LayerKey);
        var dtype = (ScalarType)ctx.get_data("dtype");
        using var scope = NewDisposeScope();
        var weight = Int8Codec.DequantizeForFpMatmul(w.CB, w.SCB, dtype);                  // [out, in]
        result[1] = grad_output.to_type(dtype).matmul(weight).MoveToOuterDisposeScope();    // [N, in]
        return BackwardHandOver.Finish(result, grad_output);   // no owner on CUDA's engine thread: see BackwardHandOver
    }
}
