using System.Runtime.InteropServices;

namespace Peft.Transformers;

/// <summary>
/// Free memory of a CUDA device (torch <c>cuda.mem_get_info</c>, which accelerate's <c>get_max_memory</c> uses for
/// <c>device_map="auto"</c>). TorchSharp 0.107 has no such call, so this asks the CUDA driver (<c>libcuda.so.1</c>)
/// directly, in the device's primary context — the one libtorch uses.
/// </summary>
internal static class GpuMemory
{
    /// <summary>Free bytes on CUDA device <paramref name="index"/>.</summary>
    /// <exception cref="NotSupportedException">The driver library or a call into it fails (the message names the call and
    /// says to pass <see cref="FromPretrainedOptions.MaxMemory"/>).</exception>
    public static long FreeBytes(int index)
    {
        if (!NativeLibrary.TryLoad(OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1", out var lib))
            throw Unsupported("the CUDA driver library could not be loaded");
        Check(Fn<Init>(lib, "cuInit")(0), "cuInit");
        Check(Fn<DeviceGet>(lib, "cuDeviceGet")(out int device, index), "cuDeviceGet");
        Check(Fn<Retain>(lib, "cuDevicePrimaryCtxRetain")(out var ctx, device), "cuDevicePrimaryCtxRetain");
        try
        {
            Check(Fn<CtxPush>(lib, "cuCtxPushCurrent_v2")(ctx), "cuCtxPushCurrent");
            try
            {
                Check(Fn<MemGetInfo>(lib, "cuMemGetInfo_v2")(out var free, out _), "cuMemGetInfo");
                return (long)free;
            }
            finally
            {
                Fn<CtxPop>(lib, "cuCtxPopCurrent_v2")(out _);
            }
        }
        finally
        {
            Fn<Release>(lib, "cuDevicePrimaryCtxRelease_v2")(device);
        }
    }

    private static T Fn<T>(IntPtr lib, string name) where T : Delegate =>
        NativeLibrary.TryGetExport(lib, name, out var p) ? Marshal.GetDelegateForFunctionPointer<T>(p) : throw Unsupported($"the CUDA driver has no {name}");

    private static void Check(int status, string call)
    {
        if (status != 0) throw Unsupported($"{call} returned CUDA error {status}");
    }

    private static NotSupportedException Unsupported(string why) =>
        new($"device_map: cannot read the free GPU memory ({why}); give FromPretrainedOptions.MaxMemory, e.g. {{ [\"cuda:0\"] = 20L << 30, [\"cpu\"] = 64L << 30 }}.");

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int Init(uint flags);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int DeviceGet(out int device, int ordinal);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int Retain(out IntPtr ctx, int device);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int Release(int device);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int CtxPush(IntPtr ctx);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int CtxPop(out IntPtr ctx);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int MemGetInfo(out nuint free, out nuint total);
}
