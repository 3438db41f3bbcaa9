using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;

namespace Peft.Benchmarks.OpCount;

/// <summary>
/// Counts the native calls TorchSharp makes into LibTorchSharp, per exported function, through the counting shim
/// that <c>bench/opcount/build-shim.sh</c> builds. <see cref="Install"/> (before anything touches TorchSharp) routes
/// TorchSharp's <c>DllImport("LibTorchSharp")</c> to the shim when <c>PEFT_OPCOUNT_LIB</c> is set. A
/// <c>THSTensor_*</c> compute function is one ATen op: on CUDA, one kernel launch for an elementwise op or a GEMM
/// (a few for reductions / cat), so the counts are the launch counts' host-side proxy.
/// </summary>
internal static unsafe class OpCounter
{
    private static nint _lib;
    private static delegate* unmanaged<int> _n;
    private static delegate* unmanaged<int, nint> _name;
    private static delegate* unmanaged<int, ulong> _get;
    private static string[] _names = [];

    /// <summary>Whether the shim is in use.</summary>
    public static bool Enabled => _lib != 0;

    /// <summary>Routes TorchSharp's native calls through the shim named by <c>PEFT_OPCOUNT_LIB</c> (no-op without it).</summary>
    public static void Install()
    {
        var path = Environment.GetEnvironmentVariable("PEFT_OPCOUNT_LIB");
        if (string.IsNullOrEmpty(path)) return;
        // Loaded at TorchSharp's first native call, after it loaded libtorch (the shim's constructor opens the real
        // LibTorchSharp, whose libtorch dependency then resolves to the loaded copy).
        NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, (name, _, _) => name == "LibTorchSharp" ? Load(path) : 0);
    }

    private static nint Load(string path)
    {
        if (_lib != 0) return _lib;
        var lib = NativeLibrary.Load(path);
        _n = (delegate* unmanaged<int>)NativeLibrary.GetExport(lib, "peft_opcount_n");
        _name = (delegate* unmanaged<int, nint>)NativeLibrary.GetExport(lib, "peft_opcount_name");
        _get = (delegate* unmanaged<int, ulong>)NativeLibrary.GetExport(lib, "peft_opcount_get");
        _names = Enumerable.Range(0, _n()).Select(i => Marshal.PtrToStringAnsi(_name(i))!).ToArray();
        return _lib = lib;
    }

    /// <summary>The counters now (per exported function, in the shim's order).</summary>
    public static ulong[] Snapshot()
    {
        var c = new ulong[_names.Length];
        for (int i = 0; i < c.Length; i++) c[i] = _get(i);
        return c;
    }

    /// <summary>Calls per function between two snapshots (signed), divided by <paramref name="per"/>, largest first (zeros dropped).</summary>
    public static long[] Delta(ulong[] before, ulong[] after) => after.Select((a, i) => (long)(a - before[i])).ToArray();

    /// <summary>Per-function call counts <paramref name="delta"/> divided by <paramref name="per"/>, largest first (zeros dropped).</summary>
    public static IReadOnlyList<(string Name, double Calls)> Named(long[] delta, double per = 1) =>
        Enumerable.Range(0, _names.Length).Where(i => delta[i] != 0)
            .Select(i => (_names[i], delta[i] / per)).OrderByDescending(x => x.Item2).ToList();

    // Calls that read or manage handles / metadata and launch nothing (sizes, dtype, device, dispose, grad slot, data pointer, scalars).
    private static readonly string[] NoKernel =
    [
        "THSTensor_dispose", "THSTensor_free", "THSTensor_ndimension", "THSTensor_size", "THSTensor_sizes", "THSTensor_stride", "THSTensor_strides",
        "THSTensor_type", "THSTensor_device_type", "THSTensor_device_index", "THSTensor_requires_grad", "THSTensor_set_requires_grad",
        "THSTensor_grad", "THSTensor_set_grad", "THSTensor_data", "THSTensor_numel", "THSTensor_element_size", "THSTensor_is_contiguous",
        "THSTensor_storage_offset", "THSTensor_is_leaf", "THSTensor_is_sparse", "THSTensor_has_names", "THSTensor_names", "THSTensor_alias",
        "THSTorch_int64_to_scalar", "THSTorch_float64_to_scalar", "THSTorch_float32_to_scalar", "THSTorch_int32_to_scalar", "THSTorch_bool_to_scalar",
        "THSTorch_dispose_scalar", "THSTorch_get_and_reset_last_err", "THSAutograd_isGradEnabled", "THSAutograd_setGrad",
        "THSTensor_is_cuda", "THSTensor_is_floating_point", "THSNN_Module_dispose",
    ];

    // View / metadata ops: a new tensor handle but no kernel (CPU or CUDA).
    private static readonly string[] Views =
    [
        "THSTensor_view", "THSTensor_reshape", "THSTensor_narrow", "THSTensor_select", "THSTensor_slice", "THSTensor_transpose", "THSTensor_t",
        "THSTensor_permute", "THSTensor_unsqueeze", "THSTensor_squeeze", "THSTensor_squeeze_no_dim", "THSTensor_expand", "THSTensor_flatten",
        "THSTensor_as_strided", "THSTensor_detach", "THSTensor_unflatten", "THSTensor_split_with_size", "THSTensor_split_with_sizes", "THSTensor_chunk",
        "THSTensor_unbind", "THSTensor_set_",
    ];

    /// <summary>Total calls, calls that may compute (not metadata / handle management), and of those the non-view ones.</summary>
    public static (double Total, double Ops, double Kernels) Classify(IReadOnlyList<(string Name, double Calls)> diff)
    {
        double total = diff.Sum(d => d.Calls);
        double ops = diff.Where(d => !NoKernel.Contains(d.Name)).Sum(d => d.Calls);
        double kernels = diff.Where(d => !NoKernel.Contains(d.Name) && !Views.Contains(d.Name)).Sum(d => d.Calls);
        return (total, ops, kernels);
    }
}
