using System.Runtime.InteropServices;

namespace Peft.Core.Distributed.Nccl;

/// <summary>
/// <see cref="INcclApi"/> over <c>libnccl.so.2</c> (located by <see cref="NcclLibrary"/>), bound through function
/// pointers resolved once. One instance per process (<see cref="Load"/>).
/// </summary>
public sealed unsafe class NcclNative : INcclApi
{
    private static readonly Lazy<NcclNative> Instance = new(() => new NcclNative());
    private readonly delegate* unmanaged<int*, int> _getVersion;
    private readonly delegate* unmanaged<NcclUniqueId*, int> _getUniqueId;
    private readonly delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int> _commInitRank;
    private readonly delegate* unmanaged<IntPtr, int> _commDestroy;
    private readonly delegate* unmanaged<IntPtr, int> _commAbort;
    private readonly delegate* unmanaged<int, IntPtr> _getErrorString;
    private readonly delegate* unmanaged<IntPtr, IntPtr> _getLastError;
    private readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> _allReduce;
    private readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> _broadcast;
    private readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int> _allGather;
    private readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> _reduceScatter;

    private NcclNative()
    {
        var errors = new List<string>();
        foreach (var path in NcclLibrary.Candidates())
        {
            if (NativeLibrary.TryLoad(path, out var h)) { (Handle, Path) = (h, path); break; }
            errors.Add(path);
        }
        if (Handle == IntPtr.Zero)
            throw new DllNotFoundException($"NCCL not found (tried {string.Join(", ", errors)}); set {NcclLibrary.EnvVar} to libnccl.so.2 (PyTorch's wheel ships site-packages/nvidia/nccl/lib/libnccl.so.2)");
        Path ??= NcclLibrary.FileName;
        _getVersion = (delegate* unmanaged<int*, int>)Export("ncclGetVersion");
        _getUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)Export("ncclGetUniqueId");
        _commInitRank = (delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int>)Export("ncclCommInitRank");
        _commDestroy = (delegate* unmanaged<IntPtr, int>)Export("ncclCommDestroy");
        _commAbort = (delegate* unmanaged<IntPtr, int>)Export("ncclCommAbort");
        _getErrorString = (delegate* unmanaged<int, IntPtr>)Export("ncclGetErrorString");
        _getLastError = (delegate* unmanaged<IntPtr, IntPtr>)Export("ncclGetLastError");
        _allReduce = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclAllReduce");
        _broadcast = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclBroadcast");
        _allGather = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int>)Export("ncclAllGather");
        _reduceScatter = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclReduceScatter");
    }

    /// <summary>The loaded library (loads it on first use).</summary>
    /// <exception cref="DllNotFoundException">No candidate loads; the message lists them.</exception>
    public static NcclNative Load() => Instance.Value;

    /// <summary>The native handle of the loaded library.</summary>
    public IntPtr Handle { get; }

    /// <summary>The path (or bare name) that loaded.</summary>
    public string Path { get; }

    private IntPtr Export(string name) => NativeLibrary.TryGetExport(Handle, name, out var f)
        ? f : throw new EntryPointNotFoundException($"{Path} has no export {name} (NCCL ≥ 2.13 needed)");

    /// <inheritdoc />
    public int GetVersion(out int version)
    {
        int v;
        int r = _getVersion(&v);
        version = v;
        return r;
    }

    /// <inheritdoc />
    public int GetUniqueId(out NcclUniqueId id)
    {
        NcclUniqueId u;
        int r = _getUniqueId(&u);
        id = u;
        return r;
    }

    /// <inheritdoc />
    public int CommInitRank(out IntPtr comm, int nranks, NcclUniqueId id, int rank)
    {
        IntPtr c;
        int r = _commInitRank(&c, nranks, id, rank);
        comm = c;
        return r;
    }

    /// <inheritdoc />
    public int CommDestroy(IntPtr comm) => _commDestroy(comm);

    /// <inheritdoc />
    public int CommAbort(IntPtr comm) => _commAbort(comm);

    /// <inheritdoc />
    public string GetErrorString(int result) => Marshal.PtrToStringUTF8(_getErrorString(result)) ?? "";

    /// <inheritdoc />
    public string GetLastError(IntPtr comm) => Marshal.PtrToStringUTF8(_getLastError(comm)) ?? "";

    /// <inheritdoc />
    public int AllReduce(IntPtr send, IntPtr recv, ulong count, NcclDataType type, ReduceOp op, IntPtr comm, IntPtr stream) =>
        _allReduce(send, recv, (nuint)count, (int)type, (int)op, comm, stream);

    /// <inheritdoc />
    public int Broadcast(IntPtr send, IntPtr recv, ulong count, NcclDataType type, int root, IntPtr comm, IntPtr stream) =>
        _broadcast(send, recv, (nuint)count, (int)type, root, comm, stream);

    /// <inheritdoc />
    public int AllGather(IntPtr send, IntPtr recv, ulong sendCount, NcclDataType type, IntPtr comm, IntPtr stream) =>
        _allGather(send, recv, (nuint)sendCount, (int)type, comm, stream);

    /// <inheritdoc />
    public int ReduceScatter(IntPtr send, IntPtr recv, ulong recvCount, NcclDataType type, ReduceOp op, IntPtr comm, IntPtr stream) =>
        _reduceScatter(send, recv, (nuint)recvCount, (int)type, (int)op, comm, stream);
}
