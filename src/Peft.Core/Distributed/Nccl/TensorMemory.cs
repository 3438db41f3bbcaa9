using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Distributed.Nccl;

/// <summary>
/// The raw data pointer of a tensor (PyTorch <c>tensor.data_ptr()</c>, storage offset included), which TorchSharp
/// 0.107 does not expose: read through LibTorchSharp's exported <c>THSTensor_data</c> on <see cref="Tensor.Handle"/>.
/// </summary>
public static unsafe class TensorMemory
{
    private static readonly Lazy<IntPtr> DataFn = new(() =>
    {
        var lib = NativeLibrary.Load("LibTorchSharp", typeof(torch).Assembly, null);
        return NativeLibrary.GetExport(lib, "THSTensor_data");
    });

    /// <summary>The address of <paramref name="tensor"/>'s first element (device memory for CUDA tensors).</summary>
    public static IntPtr DataPointer(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var p = ((delegate* unmanaged<IntPtr, IntPtr>)DataFn.Value)(tensor.Handle);
        if (p == IntPtr.Zero && tensor.numel() > 0) torch.CheckForErrors();
        return p;
    }
}

/// <summary>cudaSetDevice through the CUDA runtime libtorch already loaded (NCCL creates a communicator on the current device).</summary>
public static unsafe class CudaRuntime
{
    private static readonly string[] Names = ["libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so"];

    /// <summary>Makes <paramref name="index"/> the calling thread's current CUDA device.</summary>
    /// <exception cref="DllNotFoundException">No CUDA runtime library loads (the names tried are in the message).</exception>
    /// <exception cref="InvalidOperationException">cudaSetDevice failed (the code is in the message).</exception>
    public static void SetDevice(int index)
    {
        foreach (var name in Names)
        {
            if (!NativeLibrary.TryLoad(name, out var h) || !NativeLibrary.TryGetExport(h, "cudaSetDevice", out var f)) continue;
            int r = ((delegate* unmanaged<int, int>)f)(index);
            if (r != 0) throw new InvalidOperationException($"cudaSetDevice({index}) returned cudaError {r} ({name})");
            return;
        }
        throw new DllNotFoundException($"cudaSetDevice({index}): no CUDA runtime among {string.Join(", ", Names)}; start one process per GPU with CUDA_VISIBLE_DEVICES (peft-run does) so the device is 0");
    }
}
