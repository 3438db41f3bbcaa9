using System.Runtime.InteropServices;

namespace Peft.Core.Torch.Cuda;

/// <summary>
/// The few CUDA driver API entry points the fused kernels need (<c>cuModuleLoadData</c>, <c>cuModuleGetFunction</c>,
/// <c>cuLaunchKernel</c>, the context and attribute queries), bound from <c>libcuda.so.1</c>, which a CUDA libtorch
/// has loaded already. Plain C API: every call returns a <c>CUresult</c>; <see cref="Check"/> turns a failure into a
/// <see cref="CudaDriverException"/> naming the call and the driver's error string.
/// </summary>
internal sealed unsafe class CudaDriver
{
    private const string Library = "libcuda.so.1";
    private const int AttrComputeMajor = 75;   // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
    private const int AttrComputeMinor = 76;   // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR

    private static readonly Lazy<(CudaDriver? Driver, string? Error)> Instance = new(Bind);

    private readonly delegate* unmanaged<uint, int> _init;
    private readonly delegate* unmanaged<int*, int, int> _deviceGet;
    private readonly delegate* unmanaged<int*, int, int, int> _deviceGetAttribute;
    private readonly delegate* unmanaged<IntPtr*, int> _ctxGetCurrent;
    private readonly delegate* unmanaged<IntPtr, int> _ctxSetCurrent;
    private readonly delegate* unmanaged<int*, int> _ctxGetDevice;
    private readonly delegate* unmanaged<IntPtr*, int, int> _primaryCtxRetain;
    private readonly delegate* unmanaged<IntPtr*, byte*, int> _moduleLoadData;
    private readonly delegate* unmanaged<IntPtr*, IntPtr, byte*, int> _moduleGetFunction;
    private readonly delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int> _launchKernel;
    private readonly delegate* unmanaged<int, byte**, int> _getErrorString;

    private CudaDriver(IntPtr lib)
    {
        _init = (delegate* unmanaged<uint, int>)NativeLibrary.GetExport(lib, "cuInit");
        _deviceGet = (delegate* unmanaged<int*, int, int>)NativeLibrary.GetExport(lib, "cuDeviceGet");
        _deviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)NativeLibrary.GetExport(lib, "cuDeviceGetAttribute");
        _ctxGetCurrent = (delegate* unmanaged<IntPtr*, int>)NativeLibrary.GetExport(lib, "cuCtxGetCurrent");
        _ctxSetCurrent = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(lib, "cuCtxSetCurrent");
        _ctxGetDevice = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(lib, "cuCtxGetDevice");
        _primaryCtxRetain = (delegate* unmanaged<IntPtr*, int, int>)NativeLibrary.GetExport(lib, "cuDevicePrimaryCtxRetain");
        _moduleLoadData = (delegate* unmanaged<IntPtr*, byte*, int>)NativeLibrary.GetExport(lib, "cuModuleLoadData");
        _moduleGetFunction = (delegate* unmanaged<IntPtr*, IntPtr, byte*, int>)NativeLibrary.GetExport(lib, "cuModuleGetFunction");
        _launchKernel = (delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int>)NativeLibrary.GetExport(lib, "cuLaunchKernel");
        _getErrorString = (delegate* unmanaged<int, byte**, int>)NativeLibrary.GetExport(lib, "cuGetErrorString");
    }

    /// <summary>The bound driver, or null with "unavailable: ..." (no libcuda.so.1, a missing entry point, cuInit failed).</summary>
    public static (CudaDriver? Driver, string? Error) Load() => Instance.Value;

    private static (CudaDriver?, string?) Bind()
    {
        if (!OperatingSystem.IsLinux()) return (null, "unavailable: the fused kernels bind the CUDA driver on Linux only");
        if (!NativeLibrary.TryLoad(Library, out var lib)) return (null, $"unavailable: {Library} could not be loaded (no NVIDIA driver)");
        CudaDriver d;
        try
        {
            d = new CudaDriver(lib);
        }
        catch (EntryPointNotFoundException e)
        {
            return (null, $"unavailable: {Library} lacks an entry point ({e.Message})");
        }
        int rc = d._init(0);
        return rc == 0 ? (d, null) : (null, $"unavailable: cuInit failed: {d.ErrorString(rc)}");
    }

    /// <summary>The driver's text for a <c>CUresult</c>.</summary>
    public string ErrorString(int rc)
    {
        byte* s = null;
        return _getErrorString(rc, &s) == 0 && s != null ? $"{Marshal.PtrToStringUTF8((IntPtr)s)} ({rc})" : $"CUresult {rc}";
    }

    /// <summary>Throws <see cref="CudaDriverException"/> naming <paramref name="call"/> when <paramref name="rc"/> is not CUDA_SUCCESS.</summary>
    public void Check(int rc, string call)
    {
        if (rc != 0) throw new CudaDriverException($"{call} failed: {ErrorString(rc)}");
    }

    /// <summary>The CUdevice handle of ordinal <paramref name="ordinal"/> (the same numbering as torch's cuda:N).</summary>
    public int Device(int ordinal)
    {
        int dev;
        Check(_deviceGet(&dev, ordinal), $"cuDeviceGet({ordinal})");
        return dev;
    }

    /// <summary>The compute capability (major, minor) of <paramref name="device"/>.</summary>
    public (int Major, int Minor) ComputeCapability(int device)
    {
        int major, minor;
        Check(_deviceGetAttribute(&major, AttrComputeMajor, device), "cuDeviceGetAttribute(major)");
        Check(_deviceGetAttribute(&minor, AttrComputeMinor, device), "cuDeviceGetAttribute(minor)");
        return (major, minor);
    }

    /// <summary>The calling thread's current context (zero when none) and its device (−1 when none).</summary>
    public (IntPtr Context, int Device) Current()
    {
        IntPtr ctx;
        Check(_ctxGetCurrent(&ctx), "cuCtxGetCurrent");
        if (ctx == IntPtr.Zero) return (ctx, -1);
        int dev;
        Check(_ctxGetDevice(&dev), "cuCtxGetDevice");
        return (ctx, dev);
    }

    /// <summary>The primary context of <paramref name="device"/> (the one torch's runtime API uses), retained for the process.</summary>
    public IntPtr RetainPrimary(int device)
    {
        IntPtr ctx;
        Check(_primaryCtxRetain(&ctx, device), "cuDevicePrimaryCtxRetain");
        return ctx;
    }

    /// <summary>Makes <paramref name="context"/> current on the calling thread.</summary>
    public void SetCurrent(IntPtr context) => Check(_ctxSetCurrent(context), "cuCtxSetCurrent");

    /// <summary>Loads a CUBIN image into the current context; returns the CUmodule (lives as long as the context).</summary>
    public IntPtr LoadModule(byte[] image)
    {
        IntPtr module;
        fixed (byte* p = image) Check(_moduleLoadData(&module, p), "cuModuleLoadData");
        return module;
    }

    /// <summary>The CUfunction named <paramref name="name"/> (an <c>extern "C"</c> kernel) in <paramref name="module"/>.</summary>
    public IntPtr Function(IntPtr module, string name)
    {
        IntPtr f;
        var bytes = System.Text.Encoding.ASCII.GetBytes(name + "\0");
        fixed (byte* p = bytes) Check(_moduleGetFunction(&f, module, p), $"cuModuleGetFunction({name})");
        return f;
    }

    /// <summary>Launches <paramref name="function"/> on <paramref name="stream"/> (asynchronous); <paramref name="args"/> points at each argument's value.</summary>
    public void Launch(IntPtr function, uint gridX, uint gridY, uint block, IntPtr stream, void** args, string name) =>
        Check(_launchKernel(function, gridX, gridY, 1, block, 1, 1, 0, stream, args, null), $"cuLaunchKernel({name})");
}

/// <summary>A CUDA driver call failed; the message names the call and the driver's error.</summary>
internal sealed class CudaDriverException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CudaDriverException(string message) : base(message) { }
}
