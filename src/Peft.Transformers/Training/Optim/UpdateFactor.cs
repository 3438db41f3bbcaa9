using TorchSharp;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Optimization;

/// <summary>
/// The scale factor of an optimizer update (<c>alpha</c> of <c>add_</c>, <c>value</c> of <c>addcdiv_</c>), checked
/// against the parameter's dtype first. libtorch converts these factors to the tensor's element type with an overflow
/// check, so a finite but absurd learning rate (an lr of 1e39 on float32 parameters) would end in an untyped native
/// error ("value cannot be converted to type float without overflow", what torch raises as a RuntimeError); here it is
/// an <see cref="ArgumentOutOfRangeException"/> naming the factor, its value and the learning rate.
/// </summary>
internal static class UpdateFactor
{
    /// <summary>A held Scalar of <paramref name="value"/>, or throws when it does not fit <paramref name="param"/>'s dtype.</summary>
    /// <param name="value">The factor.</param>
    /// <param name="param">The tensor updated with it (its dtype bounds the factor).</param>
    /// <param name="what">How the factor is made, for the message (e.g. "-lr / (1 - beta1^step)").</param>
    /// <param name="lr">The group's learning rate, for the message.</param>
    public static Scalar Of(double value, Tensor param, string what, double lr)
    {
        double max = Largest(param.dtype);
        if (!(Math.Abs(value) <= max))
            throw new ArgumentOutOfRangeException(nameof(lr), lr,
                $"The optimizer's update factor {what} = {value:R} does not fit the {param.dtype} parameters (largest {max:R}): learning_rate {lr:R} is too large");
        return HeldScalars.Of(value);
    }

    // The largest finite value of a floating dtype (torch.finfo(dtype).max).
    private static double Largest(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => 65504.0,
        ScalarType.BFloat16 => 3.3895313892515355e38,
        ScalarType.Float32 => float.MaxValue,
        _ => double.MaxValue,
    };
}
