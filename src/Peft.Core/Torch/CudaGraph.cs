using System.Runtime.InteropServices;
using TorchSharp;

namespace Peft.Core.Torch;

/// <summary>
/// One captured CUDA graph (PyTorch <c>torch.cuda.CUDAGraph</c> / <c>torch.cuda.graph</c>): the kernels an
/// <see cref="Action"/> launches, recorded once and replayed with one call. TorchSharp exposes no graphs, so this goes
/// through a small native shim (<c>libpeft_cudagraph.so</c>, built from <c>Torch/Native/peft_cudagraph.cpp</c> with the
/// machine's g++) that binds libtorch's own <c>at::cuda::CUDAGraph</c> in the loaded libtorch and turns its C++
/// exceptions into <see cref="CudaGraphException"/>.
/// </summary>
/// <remarks>
/// <para>Capture follows PyTorch's documented pattern: synchronize, run the action once on a side stream (warm-up:
/// lazy initialisation and cuBLAS workspaces must not happen inside the capture), synchronize, capture the action on
/// the side stream into a private memory pool, synchronize. Tensors the action allocates while captured come from the
/// graph's pool; the ones it keeps (its outputs) must stay alive while the graph is replayed, the ones it frees are
/// reused by the replays. Every replay reads and writes the same device addresses: feed inputs by copying into the
/// tensors the action read, read outputs from the tensors it kept.</para>
/// <para>The action must not synchronize with the host or copy from pageable host memory (<c>item()</c>,
/// <c>tensor(...).to(cuda)</c>); its C# code runs only at warm-up and capture, so host-side state it changes is not
/// changed by replays.</para>
/// <para>Ownership: the graph owns its instantiated CUDA graph and private pool; <see cref="Dispose"/> releases
/// them (after the last replay). Linux x64 with a CUDA libtorch only; <see cref="Unavailable"/> says why otherwise.</para>
/// </remarks>
internal sealed unsafe class CudaGraph : IDisposable
{
    /// <summary>The shim's file name next to the application's assemblies (or in runtimes/linux-x64/native).</summary>
    public const string ShimFile = "libpeft_cudagraph.so";

    private const int ErrBytes = 2048;
    private IntPtr _handle;

    private CudaGraph(IntPtr handle) => _handle = handle;

    /// <summary>
    /// Null when graphs can be captured in this process; otherwise the reason, starting with "unavailable:" (shim
    /// missing, not Linux x64, libtorch without CUDA, or a libtorch that lacks one of the symbols, named).
    /// </summary>
    public static string? Unavailable
    {
        get
        {
            var api = Api.Load();
            if (api.Error is { } e) return e;
            var err = stackalloc byte[ErrBytes];
            return api.Available(err, ErrBytes) == 1 ? null : Message(err);
        }
    }

    /// <summary>
    /// Warms up and captures <paramref name="action"/> on <paramref name="device"/> (a CUDA device). The action runs
    /// <paramref name="warmups"/> times eagerly on the side stream, then once under capture (its kernels do not run
    /// then). Throws <see cref="CudaGraphException"/> naming the failing step; the current stream is restored and
    /// nothing is kept on failure. An exception of the action itself propagates after the capture is closed.
    /// </summary>
    public static CudaGraph Capture(torch.Device device, Action action, int warmups = 1)
    {
        ArgumentNullException.ThrowIfNull(action);
        if (device.type != DeviceType.CUDA) throw new ArgumentException($"CUDA graphs need a CUDA device, got {device}", nameof(device));
        if (Unavailable is { } why) throw new CudaGraphException(why);
        var api = Api.Load();
        var err = stackalloc byte[ErrBytes];
        IntPtr h = api.New(err, ErrBytes);
        if (h == IntPtr.Zero) throw new CudaGraphException(Message(err));
        var graph = new CudaGraph(h);
        try
        {
            int index = device.index < 0 ? -1 : device.index;
            torch.cuda.synchronize();
            if (warmups > 0)
            {
                Check(api.Enter(h, index, err, ErrBytes), err);
                try
                {
                    for (int i = 0; i < warmups; i++) action();
                }
                finally
                {
                    torch.cuda.synchronize();
                    api.Exit(h, err, ErrBytes);
                }
            }
            Check(api.Begin(h, index, err, ErrBytes), err);
            try
            {
                action();
            }
            catch
            {
                api.End(h, err, ErrBytes);                        // close the capture; the action's error is the one that matters
                throw;
            }
            Check(api.End(h, err, ErrBytes), err);
            torch.cuda.synchronize();
            return graph;
        }
        catch
        {
            graph.Dispose();
            throw;
        }
    }

    /// <summary>Launches the captured kernels on the current stream (asynchronous, as any CUDA op).</summary>
    public void Replay()
    {
        ObjectDisposedException.ThrowIf(_handle == IntPtr.Zero, this);
        var err = stackalloc byte[ErrBytes];
        Check(Api.Load().Replay(_handle, err, ErrBytes), err);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        var h = Interlocked.Exchange(ref _handle, IntPtr.Zero);
        if (h == IntPtr.Zero) return;
        Api.Load().Free(h);
    }

    private static void Check(int rc, byte* err)
    {
        if (rc != 0) throw new CudaGraphException(Message(err));
    }

    /// <summary>The shim's path next to the application (or under runtimes/linux-x64/native), or null when it was not built.</summary>
    internal static string? FindShim()
    {
        string baseDir = AppContext.BaseDirectory;
        foreach (var p in new[] { Path.Combine(baseDir, ShimFile), Path.Combine(baseDir, "runtimes", "linux-x64", "native", ShimFile) })
            if (File.Exists(p)) return p;
        return null;
    }

    private static string Message(byte* err) => Marshal.PtrToStringUTF8((IntPtr)err) ?? "unknown error";

    // The shim's entry points, bound once per process.
    private sealed class Api
    {
        private static readonly Lazy<Api> Instance = new(() => new Api());

        public static Api Load() => Instance.Value;

        public string? Error { get; }
        public readonly delegate* unmanaged<byte*, int, int> Available;
        public readonly delegate* unmanaged<byte*, int, IntPtr> New;
        public readonly delegate* unmanaged<IntPtr, int, byte*, int, int> Enter;
        public readonly delegate* unmanaged<IntPtr, byte*, int, int> Exit;
        public readonly delegate* unmanaged<IntPtr, int, byte*, int, int> Begin;
        public readonly delegate* unmanaged<IntPtr, byte*, int, int> End;
        public readonly delegate* unmanaged<IntPtr, byte*, int, int> Replay;
        public readonly delegate* unmanaged<IntPtr, void> Free;

        private Api()
        {
            if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            {
                Error = "unavailable: the CUDA graph shim is built for Linux x64 only";
                return;
            }
            string? path = FindShim();
            if (path is null)
            {
                Error = $"unavailable: {ShimFile} not found next to the application (was g++ available at build time?)";
                return;
            }
            if (!NativeLibrary.TryLoad(path, out var lib))
            {
                Error = $"unavailable: could not load {path}";
                return;
            }
            Available = (delegate* unmanaged<byte*, int, int>)NativeLibrary.GetExport(lib, "peft_graph_available");
            New = (delegate* unmanaged<byte*, int, IntPtr>)NativeLibrary.GetExport(lib, "peft_graph_new");
            Enter = (delegate* unmanaged<IntPtr, int, byte*, int, int>)NativeLibrary.GetExport(lib, "peft_graph_enter");
            Exit = (delegate* unmanaged<IntPtr, byte*, int, int>)NativeLibrary.GetExport(lib, "peft_graph_exit");
            Begin = (delegate* unmanaged<IntPtr, int, byte*, int, int>)NativeLibrary.GetExport(lib, "peft_graph_begin");
            End = (delegate* unmanaged<IntPtr, byte*, int, int>)NativeLibrary.GetExport(lib, "peft_graph_end");
            Replay = (delegate* unmanaged<IntPtr, byte*, int, int>)NativeLibrary.GetExport(lib, "peft_graph_replay");
            Free = (delegate* unmanaged<IntPtr, void>)NativeLibrary.GetExport(lib, "peft_graph_free");
        }
    }
}

/// <summary>A CUDA graph could not be captured or replayed; the message names the failing libtorch call and its error.</summary>
internal sealed class CudaGraphException : Exception
{
    /// <summary>Creates the exception with the shim's message.</summary>
    public CudaGraphException(string message) : base(message) { }
}
