using System.Runtime.InteropServices;

namespace Peft.Core.Torch.Cuda;

/// <summary>
/// torch's current CUDA stream as a raw <c>cudaStream_t</c> (<c>torch.cuda.current_stream(device).cuda_stream</c>),
/// through the CUDA graph shim's <c>peft_cuda_current_stream</c> export (<c>c10::cuda::getCurrentCUDAStream</c> then
/// <c>CUDAStream::stream()</c> in the loaded libc10_cuda.so), so that a kernel launched through the driver API runs
/// in order with torch's own kernels, also under a CUDA graph capture or a side stream.
/// </summary>
internal static unsafe class TorchStream
{
    private const int ErrBytes = 1024;
    private static readonly Lazy<(IntPtr Fn, string? Error)> Export = new(Bind);

    /// <summary>Null when the current stream can be read; otherwise "unavailable: ..." (shim missing, symbol missing).</summary>
    public static string? Unavailable => Export.Value.Error;

    /// <summary>The current stream of CUDA device <paramref name="device"/>; throws <see cref="CudaDriverException"/> on failure.</summary>
    public static IntPtr Current(int device)
    {
        var (fn, error) = Export.Value;
        if (error is not null) throw new CudaDriverException(error);
        var call = (delegate* unmanaged<int, IntPtr*, byte*, int, int>)fn;
        IntPtr stream;
        var err = stackalloc byte[ErrBytes];
        if (call(device, &stream, err, ErrBytes) != 0)
            throw new CudaDriverException(Marshal.PtrToStringUTF8((IntPtr)err) ?? "peft_cuda_current_stream failed");
        return stream;
    }

    private static (IntPtr, string?) Bind()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return (IntPtr.Zero, "unavailable: the stream shim is built for Linux x64 only");
        if (CudaGraph.FindShim() is not { } path)
            return (IntPtr.Zero, $"unavailable: {CudaGraph.ShimFile} not found next to the application (was g++ available at build time?)");
        if (!NativeLibrary.TryLoad(path, out var lib)) return (IntPtr.Zero, $"unavailable: could not load {path}");
        return NativeLibrary.TryGetExport(lib, "peft_cuda_current_stream", out var fn)
            ? (fn, null)
            : (IntPtr.Zero, $"unavailable: {path} has no peft_cuda_current_stream (stale build?)");
    }
}
