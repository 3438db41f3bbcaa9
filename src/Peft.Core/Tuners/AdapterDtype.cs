using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// A per-adapter container in a tuner layer (PEFT's <c>nn.ModuleDict</c> / <c>nn.ParameterDict</c> / <c>BufferDict</c>
/// keyed by adapter name) that can upcast one adapter's entry (PEFT <c>cast_adapter_dtype</c>).
/// </summary>
internal interface IAdapterContainer
{
    /// <summary>
    /// Makes the float16 / bfloat16 tensors of <paramref name="adapter"/>'s entry float32 (nothing when absent or
    /// already float32). Parameters stay registered under the same name, keep requires_grad and their device.
    /// </summary>
    void UpcastHalfToFloat32(string adapter);
}

/// <summary>The dtype rules of PEFT's <c>autocast_adapter_dtype</c> shared by the tuner core and the layers.</summary>
public static class AdapterDtype
{
    /// <summary>True for the dtypes PEFT upcasts to float32 (<c>dtypes_to_convert_to_fp32</c>: float16, bfloat16).</summary>
    public static bool IsHalf(ScalarType dtype) => dtype is ScalarType.Float16 or ScalarType.BFloat16;

    /// <summary>
    /// <paramref name="x"/> in <paramref name="dtype"/> (PEFT <c>_cast_input_dtype</c>): the same tensor when the dtype
    /// already matches (no op on the float32 path), else a converted copy owned by the current dispose scope.
    /// </summary>
    public static Tensor CastTo(Tensor x, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(x);
        return x.dtype == dtype ? x : x.to(dtype);
    }
}
