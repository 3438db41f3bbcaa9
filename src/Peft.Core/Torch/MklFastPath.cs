using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Microsoft.Extensions.Logging;

namespace Peft.Core.Torch;

/// <summary>
/// The MKL-on-AMD fast path. libtorch's CPU build links Intel MKL, whose GEMM takes its AVX2 / AVX-512 kernels only
/// when its vendor check (<c>mkl_serv_intel_cpu_true</c>) passes; on AMD CPUs it passes over them. This class loads
/// a one-function native shim (<c>libpeft_mklshim.so</c>, built from <c>Torch/Native/peft_mklshim.c</c> with the
/// machine's gcc at build time) with <c>RTLD_GLOBAL</c> before libtorch loads, so MKL chooses kernels by CPU
/// features. Results stay equal within fp32 rounding (the same BLAS contract; only the kernel differs).
/// </summary>
/// <remarks>
/// Decision per CPU feature: on when the CPU is not Intel's (on Intel the check already passes) and has AVX2 (the
/// kernels the check gates; measured 1.04-1.2× on a Zen 3 for the LoRA/forward GEMMs). Off on Intel, on non-x86 and
/// without AVX2. Environment variable <c>PEFT_MKL_VENDOR_OVERRIDE</c>: <c>0</c> turns it off, <c>1</c> forces it
/// on. It runs from this assembly's module initializer (libtorch must not be loaded yet); calling
/// <see cref="Enable"/> first thing in <c>Main</c> covers programs that touch TorchSharp before Peft.Core.
/// Linux x64 only; elsewhere <see cref="Describe"/> says why it is off.
/// </remarks>
public static class MklFastPath
{
    /// <summary>Environment variable: 0 = off, 1 = force on, unset = decide by CPU features.</summary>
    public const string EnvVar = "PEFT_MKL_VENDOR_OVERRIDE";

    /// <summary>The shim's file name next to the application's assemblies (or in runtimes/linux-x64/native).</summary>
    public const string ShimFile = "libpeft_mklshim.so";

    private static readonly object Gate = new();
    private static string? _state;

    /// <summary>True when the shim is loaded (MKL's vendor check overridden in this process).</summary>
    public static bool Active { get; private set; }

    /// <summary>
    /// Loads the shim when the decision says so (idempotent; the first call decides). Returns the log line naming
    /// the path in use, also written to <paramref name="logger"/> at Information level.
    /// </summary>
    public static string Enable(ILogger? logger = null)
    {
        lock (Gate)
        {
            _state ??= Decide();
            logger?.LogInformation("{MklPath}", _state);
            return _state;
        }
    }

    /// <summary>The log line naming the GEMM path in use ("mkl: vendor check overridden (...)" or "mkl: default path (...)").</summary>
    public static string Describe() => Enable();

    private static string Decide()
    {
        string? env = Environment.GetEnvironmentVariable(EnvVar);
        if (env == "0") return $"mkl: default path ({EnvVar}=0)";
        bool force = env == "1";
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return "mkl: default path (shim is Linux x64 only)";
        string vendor = CpuVendor();
        if (!force && vendor == "GenuineIntel") return "mkl: default path (Intel CPU: MKL's vendor check already passes)";
        if (!force && !Avx2.IsSupported) return $"mkl: default path ({vendor} without AVX2: nothing to gain)";
        string? path = FindShim();
        if (path is null) return $"mkl: default path ({ShimFile} not found next to the application; was gcc available at build time?)";
        if (IsLibtorchLoaded()) return "mkl: default path (libtorch was already loaded before Peft.Core; call MklFastPath.Enable() first in Main)";
        IntPtr h = dlopen(path, RtldNow | RtldGlobal);
        if (h == IntPtr.Zero) return $"mkl: default path (dlopen {path} failed: {Marshal.PtrToStringAnsi(dlerror())})";
        Active = true;
        string features = Avx512F.IsSupported ? "AVX-512" : "AVX2";
        return $"mkl: vendor check overridden ({vendor}, {features}{(force ? $", {EnvVar}=1" : "")}; shim {path})";
    }

    private static string CpuVendor()
    {
        if (!X86Base.IsSupported) return "non-x86";
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        Span<byte> b = stackalloc byte[12];
        BitConverter.TryWriteBytes(b[..4], ebx);
        BitConverter.TryWriteBytes(b[4..8], edx);
        BitConverter.TryWriteBytes(b[8..], ecx);
        return System.Text.Encoding.ASCII.GetString(b);
    }

    private static string? FindShim()
    {
        string baseDir = AppContext.BaseDirectory;
        foreach (var p in new[] { Path.Combine(baseDir, ShimFile), Path.Combine(baseDir, "runtimes", "linux-x64", "native", ShimFile) })
            if (File.Exists(p)) return p;
        return null;
    }

    private static bool IsLibtorchLoaded()
    {
        try
        {
            return File.ReadLines("/proc/self/maps").Any(l => l.Contains("libtorch_cpu", StringComparison.Ordinal));
        }
        catch (IOException)
        {
            return false;
        }
    }

    private const int RtldNow = 2, RtldGlobal = 0x100;

    [DllImport("libc", EntryPoint = "dlopen")]
    private static extern IntPtr dlopen(string file, int mode);

    [DllImport("libc", EntryPoint = "dlerror")]
    private static extern IntPtr dlerror();

#pragma warning disable CA2255 // Must run before libtorch loads, i.e. before any TorchSharp call a user could make through Peft.Core.
    [ModuleInitializer]
    internal static void OnLoad() => Enable();
#pragma warning restore CA2255
}
