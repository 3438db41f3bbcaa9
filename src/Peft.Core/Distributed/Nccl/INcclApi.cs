namespace Peft.Core.Distributed.Nccl;

/// <summary>NCCL's unique id (<c>ncclUniqueId</c>, 128 opaque bytes), made by rank 0 and sent to every rank.</summary>
public unsafe struct NcclUniqueId
{
    /// <summary>Size in bytes (<c>NCCL_UNIQUE_ID_BYTES</c>).</summary>
    public const int Size = 128;

    /// <summary>The bytes.</summary>
    public fixed byte Bytes[Size];

    /// <summary>Copies the id into a new array.</summary>
    public readonly byte[] ToArray()
    {
        var a = new byte[Size];
        fixed (byte* p = Bytes) new ReadOnlySpan<byte>(p, Size).CopyTo(a);
        return a;
    }

    /// <summary>The id from <paramref name="bytes"/> (exactly <see cref="Size"/> bytes).</summary>
    public static NcclUniqueId FromArray(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size) throw new ArgumentException($"An NCCL unique id has {Size} bytes, got {bytes.Length}", nameof(bytes));
        var id = new NcclUniqueId();
        bytes.CopyTo(new Span<byte>(id.Bytes, Size));
        return id;
    }
}

/// <summary>NCCL element types (<c>ncclDataType_t</c>).</summary>
public enum NcclDataType
{
    /// <summary>int8.</summary>
    Int8 = 0,
    /// <summary>uint8.</summary>
    Uint8 = 1,
    /// <summary>int32.</summary>
    Int32 = 2,
    /// <summary>uint32.</summary>
    Uint32 = 3,
    /// <summary>int64.</summary>
    Int64 = 4,
    /// <summary>uint64.</summary>
    Uint64 = 5,
    /// <summary>float16.</summary>
    Float16 = 6,
    /// <summary>float32.</summary>
    Float32 = 7,
    /// <summary>float64.</summary>
    Float64 = 8,
    /// <summary>bfloat16 (NCCL ≥ 2.10).</summary>
    BFloat16 = 9,
}

/// <summary>
/// The NCCL C functions <see cref="NcclCollectives"/> calls (nccl.h), each returning an <c>ncclResult_t</c>. The
/// production implementation is <see cref="NcclNative"/> (P/Invoke into <c>libnccl.so.2</c>); tests pass a fake to
/// check argument checking and the error mapping without a GPU.
/// </summary>
public interface INcclApi
{
    /// <summary>Whether buffers may be host memory (fakes only; NCCL needs device memory).</summary>
    bool AcceptsHostBuffers => false;

    /// <summary><c>ncclGetVersion</c>.</summary>
    int GetVersion(out int version);

    /// <summary><c>ncclGetUniqueId</c>.</summary>
    int GetUniqueId(out NcclUniqueId id);

    /// <summary><c>ncclCommInitRank</c> (on the current CUDA device).</summary>
    int CommInitRank(out IntPtr comm, int nranks, NcclUniqueId id, int rank);

    /// <summary><c>ncclCommDestroy</c>.</summary>
    int CommDestroy(IntPtr comm);

    /// <summary><c>ncclCommAbort</c>: frees the communicator and makes pending operations return.</summary>
    int CommAbort(IntPtr comm);

    /// <summary><c>ncclGetErrorString</c>.</summary>
    string GetErrorString(int result);

    /// <summary><c>ncclGetLastError</c> (a more precise message of the last failure, may be empty).</summary>
    string GetLastError(IntPtr comm);

    /// <summary><c>ncclAllReduce</c>.</summary>
    int AllReduce(IntPtr send, IntPtr recv, ulong count, NcclDataType type, ReduceOp op, IntPtr comm, IntPtr stream);

    /// <summary><c>ncclBroadcast</c>.</summary>
    int Broadcast(IntPtr send, IntPtr recv, ulong count, NcclDataType type, int root, IntPtr comm, IntPtr stream);

    /// <summary><c>ncclAllGather</c> (<paramref name="sendCount"/> elements per rank).</summary>
    int AllGather(IntPtr send, IntPtr recv, ulong sendCount, NcclDataType type, IntPtr comm, IntPtr stream);

    /// <summary><c>ncclReduceScatter</c> (<paramref name="recvCount"/> elements per rank).</summary>
    int ReduceScatter(IntPtr send, IntPtr recv, ulong recvCount, NcclDataType type, ReduceOp op, IntPtr comm, IntPtr stream);
}
