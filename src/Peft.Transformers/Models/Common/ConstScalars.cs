using TorchSharp;

namespace Peft.Transformers.Models;

/// <summary>
/// Constant Scalars the forward passes use on every call (RMSNorm's exponent 2; the alpha 1 is
/// <see cref="Peft.Core.Torch.HeldScalars.One"/>),
/// made once per process instead of per call: an implicit <c>1</c> or <see cref="Peft.Core.Torch.HeldScalars"/>
/// costs a native scalar creation and, later, its disposal per use. Static, so always reachable (never finalized,
/// never disposed): the finalizer race <see cref="Peft.Core.Torch.HeldScalars"/> guards against cannot occur.
/// Same dtypes (int32) as the implicit conversions they replace, so the kernels see the same values.
/// </summary>
internal static class ConstScalars
{
    /// <summary>int32 2: the exponent of RMSNorm's <c>pow(2)</c>.</summary>
    public static readonly Scalar Two = 2.ToScalar();
}
