using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Torch.Cuda;

/// <summary>
/// Fused CUDA kernels for the training step's elementwise chains (RMSNorm forward / backward, SwiGLU forward /
/// backward, rotary on q and k, PEFT's float32 LoRA tail): one kernel each where torch's eager chain launches several over float32 temporaries. The source
/// (<c>fused_kernels.cu</c>, an embedded resource) is compiled at run time with NVRTC for the device's compute
/// capability, once per process and device, loaded into torch's primary context through the CUDA driver API and
/// launched on torch's current stream: no CUDA toolkit at build time.
/// </summary>
/// <remarks>
/// <para>Numerics: every elementwise step rounds where torch's eager chain rounds (see the .cu file); only the row
/// and column reductions sum in another order.</para>
/// <para>Failures to set up (no driver, no NVRTC, a compile error, an old libtorch) make <see cref="Applies"/> return
/// false and are reported once on stderr; the callers then run their eager ops. <see cref="EnvVar"/> = 0 turns the
/// kernels off (<see cref="EnabledFor"/>: single families). Inputs must be contiguous CUDA tensors of one dtype
/// (bfloat16, float16 or float32) on one device, except where a method says otherwise (rotary reads strided q / k
/// and tables; the LoRA tail takes a float32 h); outputs are new tensors owned by the caller.</para>
/// </remarks>
internal static unsafe class FusedKernels
{
    /// <summary>Environment variable: "0" turns the fused kernels off (read on every dispatch).</summary>
    public const string EnvVar = "PEFT_FUSED_KERNELS";

    /// <summary>Manifest name of the embedded kernel source.</summary>
    public const string SourceResource = "Peft.Core.Torch.Cuda.fused_kernels.cu";

    private const uint ElementwiseBlock = 256;
    private const uint ColumnBlock = 256;
    private const int RowsPerChunk = 64;

    private static readonly string[] KernelNames = ["rms_fwd", "rms_bwd_x", "rms_bwd_w", "swiglu_fwd", "swiglu_bwd", "rope", "lora_tail_fwd", "lora_tail_bwd", "adamw_step"];
    private static readonly ConcurrentDictionary<int, Lazy<(DeviceKernels? Kernels, string? Error)>> Devices = new();
    private static readonly Lazy<(IntPtr Fn, string? Error)> DataPtrExport = new(BindDataPtr);
    private static int _reported;

    /// <summary>False when <see cref="EnvVar"/> is "0".</summary>
    public static bool Enabled => Environment.GetEnvironmentVariable(EnvVar) != "0";

    /// <summary>
    /// False when <see cref="EnvVar"/> is "0" or lists <c>-family</c> (comma-separated, e.g. <c>-rotary,-lora_tail</c>),
    /// so one family of kernels (<c>rmsnorm</c>, <c>swiglu</c>, <c>rotary</c>, <c>lora_tail</c>) can be measured
    /// against its eager ops in one process. Read on every dispatch.
    /// </summary>
    public static bool EnabledFor(string family)
    {
        var value = Environment.GetEnvironmentVariable(EnvVar);
        if (value is null) return true;
        if (value == "0") return false;
        foreach (var part in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            if (part.Length > 1 && part[0] == '-' && part.AsSpan(1).Equals(family, StringComparison.Ordinal)) return false;
        return true;
    }

    /// <summary>
    /// Null when the kernels are compiled and loaded for CUDA device <paramref name="deviceIndex"/> (compiling them on
    /// the first call); otherwise the reason, starting with "unavailable:".
    /// </summary>
    public static string? Unavailable(int deviceIndex) => Devices.GetOrAdd(Math.Max(0, deviceIndex), i => new(() => Build(i))).Value.Error;

    /// <summary>
    /// True when the fused kernels should run on these tensors: enabled, all CUDA tensors on one device with one dtype
    /// (bfloat16, float16 or float32), not empty, and the kernels available there (the first refusal for lack of
    /// kernels is printed once on stderr). CPU tensors return false without touching CUDA.
    /// </summary>
    public static bool Applies(params Tensor[] tensors) => Usable(tensors, sameDtype: true);

    /// <summary>
    /// <see cref="Applies"/> for the LoRA tail's mixed dtypes: <paramref name="result"/> in bfloat16, float16 or
    /// float32 and <paramref name="float32"/> float32, both CUDA tensors on one device.
    /// </summary>
    public static bool AppliesWithFloat32(Tensor result, Tensor float32) =>
        float32.dtype == ScalarType.Float32 && Usable([result, float32], sameDtype: false);

    private static bool Usable(Tensor[] tensors, bool sameDtype)
    {
        if (tensors.Length == 0 || !Enabled) return false;
        var first = tensors[0];
        if (first.device_type != DeviceType.CUDA || first.numel() == 0) return false;
        var dtype = first.dtype;
        if (dtype is not (ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float32)) return false;
        int index = first.device_index;
        foreach (var t in tensors)
            if (t.device_type != DeviceType.CUDA || t.device_index != index || (sameDtype && t.dtype != dtype)) return false;
        if (Unavailable(index) is not { } why) return true;
        if (Interlocked.Exchange(ref _reported, 1) == 0)
            Console.Error.WriteLine($"Peft.NET fused CUDA kernels {why}; running the eager ops.");
        return false;
    }

    /// <summary>The embedded CUDA source of the kernels.</summary>
    public static string KernelSource()
    {
        using var s = typeof(FusedKernels).Assembly.GetManifestResourceStream(SourceResource)
            ?? throw new InvalidOperationException($"embedded resource {SourceResource} is missing from {typeof(FusedKernels).Assembly.GetName().Name}");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }

    /// <summary>
    /// RMSNorm forward (HF <c>LlamaRMSNorm</c>): x [..., H] contiguous, w [H] → (out [..., H] in x's dtype,
    /// rstd [rows] float32 = rsqrt(mean(x²) + eps) per row, for the backward).
    /// </summary>
    public static (Tensor Output, Tensor Rstd) RmsNormForward(Tensor x, Tensor w, double eps)
    {
        int h = checked((int)x.shape[^1]);
        long rows = x.numel() / h;
        var output = empty_like(x);
        var rstd = empty(rows, ScalarType.Float32, x.device);
        IntPtr px = DataPtr(x), pw = DataPtr(w), po = DataPtr(output), pr = DataPtr(rstd);
        float invH = MeanFactor(rows, h), epsF = (float)eps;
        void** args = stackalloc void*[] { &px, &pw, &po, &pr, &h, &invH, &epsF };
        Launch(x, "rms_fwd", checked((uint)rows), 1, RowBlock(h), args);
        return (output, rstd);
    }

    /// <summary>RMSNorm backward for x: g, x [..., H] contiguous, w [H], rstd [rows] → grad x [..., H] in x's dtype.</summary>
    public static Tensor RmsNormBackwardInput(Tensor g, Tensor x, Tensor w, Tensor rstd)
    {
        int h = checked((int)x.shape[^1]);
        long rows = x.numel() / h;
        var gx = empty_like(x);
        IntPtr pg = DataPtr(g), px = DataPtr(x), pw = DataPtr(w), pr = DataPtr(rstd), pgx = DataPtr(gx);
        float invH = 1.0f / h;                                                          // mean's backward: grad · (1 / H)
        void** args = stackalloc void*[] { &pg, &px, &pw, &pr, &pgx, &h, &invH };
        Launch(x, "rms_bwd_x", checked((uint)rows), 1, RowBlock(h), args);
        return gx;
    }

    /// <summary>
    /// RMSNorm backward for w: Σ over rows of round(g · round(x · rstd)) with float32 accumulation, rounded once to
    /// x's dtype → [H].
    /// </summary>
    public static Tensor RmsNormBackwardWeight(Tensor g, Tensor x, Tensor rstd)
    {
        using var scope = NewDisposeScope();
        int h = checked((int)x.shape[^1]);
        long rows = x.numel() / h;
        int perChunk = (int)Math.Max(RowsPerChunk, (rows + 65534) / 65535);
        long chunks = (rows + perChunk - 1) / perChunk;
        var partial = empty([chunks, h], ScalarType.Float32, x.device);               // [chunks, H]
        IntPtr pg = DataPtr(g), px = DataPtr(x), pr = DataPtr(rstd), pp = DataPtr(partial);
        void** args = stackalloc void*[] { &pg, &px, &pr, &pp, &rows, &h, &perChunk };
        Launch(x, "rms_bwd_w", (uint)((h + ColumnBlock - 1) / ColumnBlock), (uint)chunks, ColumnBlock, args);
        var sum = partial.sum(0L, false);                                                     // [H] float32
        return (x.dtype == ScalarType.Float32 ? sum : sum.to_type(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>SwiGLU forward: gate, up contiguous, same shape → round(round(silu(gate)) · up), same shape and dtype.</summary>
    public static Tensor SwiGluForward(Tensor gate, Tensor up)
    {
        long n = gate.numel();
        var output = empty_like(gate);
        IntPtr pgate = DataPtr(gate), pup = DataPtr(up), po = DataPtr(output);
        int vec = Aligned(pgate, pup, po);
        void** args = stackalloc void*[] { &pgate, &pup, &po, &n, &vec };
        Launch(gate, "swiglu_fwd", ElementwiseGrid(n), 1, ElementwiseBlock, args);
        return output;
    }

    /// <summary>SwiGLU backward: g, gate, up contiguous, same shape → (grad gate, grad up), silu recomputed.</summary>
    public static (Tensor Gate, Tensor Up) SwiGluBackward(Tensor g, Tensor gate, Tensor up)
    {
        long n = gate.numel();
        var dGate = empty_like(gate);
        var dUp = empty_like(up);
        IntPtr pg = DataPtr(g), pgate = DataPtr(gate), pup = DataPtr(up), pdg = DataPtr(dGate), pdu = DataPtr(dUp);
        int vec = Aligned(pg, pgate, pup, pdg, pdu);
        void** args = stackalloc void*[] { &pg, &pgate, &pup, &pdg, &pdu, &n, &vec };
        Launch(gate, "swiglu_bwd", ElementwiseGrid(n), 1, ElementwiseBlock, args);
        return (dGate, dUp);
    }

    /// <summary>
    /// Rotary on q and k together (HF <c>apply_rotary_pos_emb</c>; <paramref name="backward"/>: its autograd, with
    /// q, k the gradients of the outputs): q [B, Hq, T, D], k [B, Hk, T, D] (any strides, unit stride on D), cos and the
    /// half-negated sin [B or 1, 1, T, D] (unit stride on D) → (q', k') as [B, Hq, T, D] / [B, Hk, T, D] views of new
    /// contiguous [B, T, H, D] tensors (the projection's layout). D even; all one dtype.
    /// </summary>
    public static (Tensor Q, Tensor K) Rotary(Tensor q, Tensor k, Tensor cos, Tensor signedSin, bool backward)
    {
        long b = q.shape[0], hq = q.shape[1], t = q.shape[2], d = q.shape[3], hk = k.shape[1];
        var oq = empty([b, t, hq, d], q.dtype, q.device);                                   // [B, T, Hq, D]
        var ok = empty([b, t, hk, d], k.dtype, k.device);                                   // [B, T, Hk, D]
        var (qs, ks, cs, ss) = (q.stride(), k.stride(), cos.stride(), signedSin.stride());
        var a = new RopeArgs
        {
            T = t, Hq = hq, Hk = hk, D = d,
            Qb = qs[0], Qh = qs[1], Qt = qs[2], Kb = ks[0], Kh = ks[1], Kt = ks[2],
            Cb = cos.shape[0] == 1 ? 0 : cs[0], Ct = cs[2], Sb = signedSin.shape[0] == 1 ? 0 : ss[0], St = ss[2],
            Backward = backward ? 1 : 0,
        };
        IntPtr pq = DataPtr(q), pk = DataPtr(k), pc = DataPtr(cos), ps = DataPtr(signedSin), poq = DataPtr(oq), pok = DataPtr(ok);
        void** args = stackalloc void*[] { &pq, &pk, &pc, &ps, &poq, &pok, &a };
        uint block = (uint)Math.Clamp(((hq + hk) * (d / 2) + 31) / 32 * 32, 32, 256);
        Launch(q, "rope", checked((uint)(b * t)), 1, block, args);
        return (oq.transpose(1, 2), ok.transpose(1, 2));                                      // [B, H, T, D] views
    }

    /// <summary>
    /// PEFT's float32 LoRA tail: result (contiguous, bfloat16 / float16 / float32), h (contiguous float32, same shape) →
    /// round_to_result_dtype(float(result) + h · s), the product and the sum rounded separately as PEFT's two ops.
    /// </summary>
    public static Tensor LoraTailForward(Tensor result, Tensor h, double scaling)
    {
        long n = result.numel();
        var output = empty_like(result);
        IntPtr pr = DataPtr(result), ph = DataPtr(h), po = DataPtr(output);
        float s = (float)scaling;
        void** args = stackalloc void*[] { &pr, &ph, &po, &s, &n };
        Launch(result, "lora_tail_fwd", ElementwiseGrid(n * 8), 1, ElementwiseBlock, args);
        return output;
    }

    /// <summary>The LoRA tail's backward for h: g (contiguous, the result's dtype) → float(g) · s, float32.</summary>
    public static Tensor LoraTailBackward(Tensor g, double scaling)
    {
        long n = g.numel();
        var gh = empty(g.shape, ScalarType.Float32, g.device);
        IntPtr pg = DataPtr(g), pgh = DataPtr(gh);
        float s = (float)scaling;
        void** args = stackalloc void*[] { &pg, &pgh, &s, &n };
        Launch(g, "lora_tail_bwd", ElementwiseGrid(n * 8), 1, ElementwiseBlock, args);
        return gh;
    }

    /// <summary>
    /// One AdamW step (decoupled weight decay) over <paramref name="param"/> in place, with its moments
    /// <paramref name="expAvg"/> / <paramref name="expAvgSq"/> (updated in place) and <paramref name="grad"/>: one kernel
    /// for the eight ops of torch's single-tensor AdamW, each rounded to the parameters' dtype as the eager op stores it
    /// (the .cu file lists the chain). All four: contiguous CUDA tensors of one dtype and size. The step's scalars come
    /// from <paramref name="s"/>, or, when <paramref name="deviceScalars"/> is given (float32 [3] on the device: decay,
    /// −lr/bc1, 1/√bc2), from device memory, so a captured CUDA graph reads each replay's values.
    /// </summary>
    public static void AdamWStep(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, AdamWScalars s, Tensor? deviceScalars = null)
    {
        long n = param.numel();
        IntPtr pp = DataPtr(param), pg = DataPtr(grad), pm = DataPtr(expAvg), pv = DataPtr(expAvgSq);
        IntPtr pd = deviceScalars is null ? IntPtr.Zero : DataPtr(deviceScalars);
        var a = new AdamWArgs
        {
            Decay = s.Decay, LerpWeight = s.LerpWeight, Beta2 = s.Beta2, OneMinusBeta2 = s.OneMinusBeta2, InvBc2Sqrt = s.InvBc2Sqrt,
            Eps = s.Eps, NegStepSize = s.NegStepSize, HasDecay = s.HasDecay ? 1 : 0,
        };
        void** args = stackalloc void*[] { &pp, &pg, &pm, &pv, &pd, &a, &n };
        Launch(param, "adamw_step", ElementwiseGrid(n * 8), 1, ElementwiseBlock, args);
    }

    // The adamw_step kernel's argument block, laid out as the .cu file's AdamWArgs (passed by value).
    [StructLayout(LayoutKind.Sequential)]
    private struct AdamWArgs
    {
        public float Decay, LerpWeight, Beta2, OneMinusBeta2, InvBc2Sqrt, Eps, NegStepSize;
        public int HasDecay;
    }

    // The rope kernel's argument block, laid out as the .cu file's RopeArgs (passed by value).
    [StructLayout(LayoutKind.Sequential)]
    private struct RopeArgs
    {
        public long T, Hq, Hk, D;
        public long Qb, Qh, Qt, Kb, Kh, Kt;
        public long Cb, Ct, Sb, St;
        public int Backward;
    }

    // 1 when every pointer is 16-byte aligned (the elementwise kernels then move 16-byte packs), else 0.
    private static int Aligned(params IntPtr[] pointers) => pointers.All(p => (p.ToInt64() & 15) == 0) ? 1 : 0;

    // torch's mean on CUDA multiplies the sum by float(outputs) / numel (ReduceMomentKernel's MeanOps factor).
    private static float MeanFactor(long rows, int h) => (float)rows / (float)(rows * (long)h);

    // Threads per row: about 8 elements each, a multiple of 32, 32..1024.
    private static uint RowBlock(int h) => (uint)Math.Clamp(((h + 7) / 8 + 31) / 32 * 32, 32, 1024);

    // Blocks for n elements at one 16-byte pack (up to 8 elements) per thread; the kernels loop over the rest.
    private static uint ElementwiseGrid(long n) => (uint)Math.Clamp((n / 8 + ElementwiseBlock) / ElementwiseBlock, 1, 1 << 16);

    private static string Suffix(ScalarType dtype) => dtype switch
    {
        ScalarType.BFloat16 => "bf16",
        ScalarType.Float16 => "f16",
        ScalarType.Float32 => "f32",
        _ => throw new ArgumentException($"fused kernels take bfloat16, float16 or float32 tensors, got {dtype}"),
    };

    private static void Launch(Tensor like, string kernel, uint gridX, uint gridY, uint block, void** args)
    {
        int index = Math.Max(0, like.device_index);
        var (kernels, error) = Devices.GetOrAdd(index, i => new(() => Build(i))).Value;
        if (kernels is null) throw new CudaDriverException(error ?? "unavailable");
        string name = $"{kernel}_{Suffix(like.dtype)}";
        var driver = kernels.Driver;
        var (previous, _) = driver.Current();
        bool switched = previous != kernels.Context;
        if (switched) driver.SetCurrent(kernels.Context);
        try
        {
            driver.Launch(kernels.Functions[name], gridX, gridY, block, TorchStream.Current(index), args, name);
        }
        finally
        {
            if (switched && previous != IntPtr.Zero) driver.SetCurrent(previous);
        }
    }

    private static IntPtr DataPtr(Tensor t)
    {
        var (fn, error) = DataPtrExport.Value;
        if (error is not null) throw new CudaDriverException(error);
        IntPtr p = ((delegate* unmanaged<IntPtr, IntPtr>)fn)(t.Handle);
        if (p == IntPtr.Zero) throw new CudaDriverException($"THSTensor_data returned null for a {t.dtype} tensor on {t.device}");
        return p;
    }

    // TorchSharp's native THSTensor_data (tensor->data_ptr(), the storage offset included), from the LibTorchSharp
    // that TorchSharp loaded (the LIBTORCHSHARP override first, as the GPU apps load it).
    private static (IntPtr, string?) BindDataPtr()
    {
        IntPtr lib = IntPtr.Zero;
        bool loaded = Environment.GetEnvironmentVariable("LIBTORCHSHARP") is { Length: > 0 } path && NativeLibrary.TryLoad(path, out lib);
        if (!loaded && !NativeLibrary.TryLoad("LibTorchSharp", typeof(torch).Assembly, null, out lib))
            return (IntPtr.Zero, "unavailable: LibTorchSharp could not be located for THSTensor_data");
        return NativeLibrary.TryGetExport(lib, "THSTensor_data", out var fn) ? (fn, null) : (IntPtr.Zero, "unavailable: LibTorchSharp has no THSTensor_data");
    }

    private static (DeviceKernels?, string?) Build(int index)
    {
        var (driver, driverError) = CudaDriver.Load();
        if (driver is null) return (null, driverError);
        if (TorchStream.Unavailable is { } streamError) return (null, streamError);
        if (DataPtrExport.Value.Error is { } dataError) return (null, dataError);
        var (nvrtc, nvrtcError) = Nvrtc.Load();
        if (nvrtc is null) return (null, nvrtcError);
        try
        {
            int device = driver.Device(index);
            var (major, minor) = driver.ComputeCapability(device);
            var cubin = nvrtc.CompileCubin(KernelSource(), "fused_kernels.cu", major, minor);
            IntPtr context = driver.RetainPrimary(device);
            var (previous, _) = driver.Current();
            driver.SetCurrent(context);
            try
            {
                IntPtr module = driver.LoadModule(cubin);
                var functions = new Dictionary<string, IntPtr>(StringComparer.Ordinal);
                foreach (var k in KernelNames)
                    foreach (var s in new[] { "bf16", "f16", "f32" })
                        functions[$"{k}_{s}"] = driver.Function(module, $"{k}_{s}");
                return (new DeviceKernels(driver, context, functions), null);
            }
            finally
            {
                if (previous != IntPtr.Zero && previous != context) driver.SetCurrent(previous);
            }
        }
        catch (Exception e) when (e is CudaDriverException or NvrtcException or InvalidOperationException)
        {
            return (null, $"unavailable: {e.Message} (NVRTC {nvrtc.Path})");
        }
    }

    // The loaded kernels of one device: its primary context and the functions by name (module lives with the context).
    private sealed record DeviceKernels(CudaDriver Driver, IntPtr Context, IReadOnlyDictionary<string, IntPtr> Functions);
}
