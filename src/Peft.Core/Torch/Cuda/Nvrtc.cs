using System.Runtime.InteropServices;
using System.Text;

namespace Peft.Core.Torch.Cuda;

/// <summary>
/// NVRTC, CUDA's run-time compiler (a plain C API), found by <see cref="NvrtcLocator"/> and bound once per process:
/// compiles CUDA C++ source to a CUBIN for one <c>sm_XY</c> architecture, so the fused kernels need no CUDA toolkit
/// at build time.
/// </summary>
internal sealed unsafe class Nvrtc
{
    private static readonly Lazy<(Nvrtc? Compiler, string? Error)> Instance = new(Bind);

    private readonly delegate* unmanaged<int*, int*, int> _version;
    private readonly delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int> _createProgram;
    private readonly delegate* unmanaged<IntPtr, int, byte**, int> _compileProgram;
    private readonly delegate* unmanaged<IntPtr, nuint*, int> _logSize;
    private readonly delegate* unmanaged<IntPtr, byte*, int> _log;
    private readonly delegate* unmanaged<IntPtr, nuint*, int> _cubinSize;
    private readonly delegate* unmanaged<IntPtr, byte*, int> _cubin;
    private readonly delegate* unmanaged<IntPtr*, int> _destroy;
    private readonly delegate* unmanaged<int, byte*> _errorString;

    private Nvrtc(IntPtr lib, string path)
    {
        Path = path;
        _version = (delegate* unmanaged<int*, int*, int>)NativeLibrary.GetExport(lib, "nvrtcVersion");
        _createProgram = (delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int>)NativeLibrary.GetExport(lib, "nvrtcCreateProgram");
        _compileProgram = (delegate* unmanaged<IntPtr, int, byte**, int>)NativeLibrary.GetExport(lib, "nvrtcCompileProgram");
        _logSize = (delegate* unmanaged<IntPtr, nuint*, int>)NativeLibrary.GetExport(lib, "nvrtcGetProgramLogSize");
        _log = (delegate* unmanaged<IntPtr, byte*, int>)NativeLibrary.GetExport(lib, "nvrtcGetProgramLog");
        _cubinSize = (delegate* unmanaged<IntPtr, nuint*, int>)NativeLibrary.GetExport(lib, "nvrtcGetCUBINSize");
        _cubin = (delegate* unmanaged<IntPtr, byte*, int>)NativeLibrary.GetExport(lib, "nvrtcGetCUBIN");
        _destroy = (delegate* unmanaged<IntPtr*, int>)NativeLibrary.GetExport(lib, "nvrtcDestroyProgram");
        _errorString = (delegate* unmanaged<int, byte*>)NativeLibrary.GetExport(lib, "nvrtcGetErrorString");
    }

    /// <summary>The library that was loaded (a path or a loader name).</summary>
    public string Path { get; }

    /// <summary>NVRTC's version (major, minor).</summary>
    public (int Major, int Minor) Version
    {
        get
        {
            int major = 0, minor = 0;
            _version(&major, &minor);
            return (major, minor);
        }
    }

    /// <summary>The bound compiler, or null with "unavailable: ..." listing every place that was tried.</summary>
    public static (Nvrtc? Compiler, string? Error) Load() => Instance.Value;

    /// <summary>The candidates in this process, in probe order (see <see cref="NvrtcLocator"/>).</summary>
    public static IReadOnlyList<string> Candidates() => NvrtcLocator.Candidates(
        Environment.GetEnvironmentVariable(NvrtcLocator.EnvVar), NvrtcLocator.LoadedLibrary("libtorch_cuda.so"),
        Environment.GetEnvironmentVariable("LD_LIBRARY_PATH"), NvrtcLocator.ListNvrtcFiles, NvrtcLocator.Subfolders);

    private static (Nvrtc?, string?) Bind()
    {
        if (!OperatingSystem.IsLinux()) return (null, "unavailable: NVRTC is looked for on Linux only");
        var tried = new List<string>();
        foreach (var candidate in Candidates())
        {
            if (!NativeLibrary.TryLoad(candidate, out var lib))
            {
                tried.Add(candidate);
                continue;
            }
            try
            {
                return (new Nvrtc(lib, candidate), null);
            }
            catch (EntryPointNotFoundException e)
            {
                tried.Add($"{candidate} ({e.Message})");
            }
        }
        return (null, $"unavailable: no NVRTC library could be loaded (set {NvrtcLocator.EnvVar}); tried {string.Join(", ", tried)}");
    }

    /// <summary>
    /// Compiles <paramref name="source"/> for <c>sm_{major}{minor}</c> with NVRTC's default options otherwise
    /// (IEEE division and square root, no flush to zero, FMA contraction as nvcc's default) and returns the CUBIN.
    /// Throws <see cref="NvrtcException"/> with the compiler's log on failure.
    /// </summary>
    public byte[] CompileCubin(string source, string name, int major, int minor)
    {
        IntPtr prog;
        var src = Encoding.UTF8.GetBytes(source + "\0");
        var progName = Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* s = src, n = progName) Check(_createProgram(&prog, s, n, 0, null, null), "nvrtcCreateProgram", prog);
        try
        {
            var option = Encoding.ASCII.GetBytes($"--gpu-architecture=sm_{major}{minor}\0");
            fixed (byte* o = option)
            {
                byte** options = stackalloc byte*[1];
                options[0] = o;
                int rc = _compileProgram(prog, 1, options);
                if (rc != 0) throw new NvrtcException($"nvrtcCompileProgram(sm_{major}{minor}) failed: {ErrorString(rc)}\n{Log(prog)}");
            }
            nuint size;
            Check(_cubinSize(prog, &size), "nvrtcGetCUBINSize", prog);
            var cubin = new byte[(int)size];
            fixed (byte* c = cubin) Check(_cubin(prog, c), "nvrtcGetCUBIN", prog);
            return cubin;
        }
        finally
        {
            _destroy(&prog);
        }
    }

    private string Log(IntPtr prog)
    {
        nuint size;
        if (_logSize(prog, &size) != 0 || size <= 1) return "";
        var buf = new byte[(int)size];
        fixed (byte* b = buf) _log(prog, b);
        return Encoding.UTF8.GetString(buf, 0, buf.Length - 1);
    }

    private void Check(int rc, string call, IntPtr prog)
    {
        if (rc != 0) throw new NvrtcException($"{call} failed: {ErrorString(rc)}{(prog == IntPtr.Zero ? "" : "\n" + Log(prog))}");
    }

    private string ErrorString(int rc) => $"{Marshal.PtrToStringUTF8((IntPtr)_errorString(rc))} ({rc})";
}

/// <summary>NVRTC failed; the message carries the call, the error and the compiler log.</summary>
internal sealed class NvrtcException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NvrtcException(string message) : base(message) { }
}
