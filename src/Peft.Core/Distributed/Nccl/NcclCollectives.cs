using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Distributed.Nccl;

/// <summary>
/// <see cref="ICollectives"/> over one NCCL communicator (PyTorch's <c>ProcessGroupNCCL</c>, without its side streams).
/// Tensors must be contiguous CUDA tensors of bfloat16, float16, float32, float64, int32, int64, int8 or uint8.
/// </summary>
/// <remarks>
/// TorchSharp exposes no CUDA stream handle, so every call is enqueued on the legacy default stream (0), the stream
/// TorchSharp's kernels run on: the collective starts after the kernels that produced its input and the kernels
/// enqueued after it see its output, with no host synchronisation. The host does not wait for the collective unless
/// <see cref="SynchronizeEachCall"/> is set (then <c>torch.cuda.synchronize()</c> after each call: simpler error
/// attribution, at the cost of a host round trip per call; bench/README.md reports it). NCCL calls with a dead peer
/// block: the <see cref="TcpRendezvous"/> watchdog aborts the communicator and ends the process.
/// </remarks>
public sealed class NcclCollectives : ICollectives
{
    private readonly INcclApi _api;
    private IntPtr _comm;

    private NcclCollectives(INcclApi api, IntPtr comm, int rank, int worldSize, Device device) =>
        (_api, _comm, Rank, WorldSize, Device) = (api, comm, rank, worldSize, device);

    /// <inheritdoc />
    public Device Device { get; }

    /// <inheritdoc />
    public int Rank { get; }

    /// <inheritdoc />
    public int WorldSize { get; }

    /// <summary>Synchronise the device after every call (off by default).</summary>
    public bool SynchronizeEachCall { get; set; }

    /// <summary>Rank 0's id for <see cref="Create"/> (<c>ncclGetUniqueId</c>).</summary>
    public static NcclUniqueId NewUniqueId(INcclApi api, int rank = 0, int worldSize = 1)
    {
        NcclErrors.Check(api, api.GetUniqueId(out var id), "ncclGetUniqueId", rank, worldSize);
        return id;
    }

    /// <summary>
    /// Creates rank <paramref name="rank"/>'s communicator (<c>ncclCommInitRank</c>; blocks until all ranks joined) on
    /// CUDA device <paramref name="deviceIndex"/> (made current first when not 0).
    /// </summary>
    public static NcclCollectives Create(INcclApi api, NcclUniqueId id, int rank, int worldSize, int deviceIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(api);
        if (worldSize < 1 || rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is not in a world of {worldSize}");
        if (deviceIndex != 0 && !api.AcceptsHostBuffers) CudaRuntime.SetDevice(deviceIndex);
        NcclErrors.Check(api, api.CommInitRank(out var comm, worldSize, id, rank), $"ncclCommInitRank(nranks {worldSize}, rank {rank})", rank, worldSize);
        return new NcclCollectives(api, comm, rank, worldSize, api.AcceptsHostBuffers ? CPU : new Device(DeviceType.CUDA, deviceIndex));
    }

    /// <inheritdoc />
    public void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        var t = TypeOf("ncclAllReduce", tensor);
        var p = TensorMemory.DataPointer(tensor);
        Call("ncclAllReduce", tensor, () => _api.AllReduce(p, p, (ulong)tensor.numel(), t, op, _comm, IntPtr.Zero));
    }

    /// <inheritdoc />
    public void Broadcast(Tensor tensor, int root = 0)
    {
        if (root < 0 || root >= WorldSize) throw new ArgumentOutOfRangeException(nameof(root), $"root {root} is not in a world of {WorldSize}");
        var t = TypeOf("ncclBroadcast", tensor);
        var p = TensorMemory.DataPointer(tensor);
        Call($"ncclBroadcast(root {root})", tensor, () => _api.Broadcast(p, p, (ulong)tensor.numel(), t, root, _comm, IntPtr.Zero));
    }

    /// <inheritdoc />
    public void AllGather(Tensor input, Tensor output)
    {
        var t = SameType("ncclAllGather", input, output);
        Sizes("ncclAllGather", output.numel(), input.numel() * WorldSize);
        var (src, dst) = (TensorMemory.DataPointer(input), TensorMemory.DataPointer(output));
        Call("ncclAllGather", input, () => _api.AllGather(src, dst, (ulong)input.numel(), t, _comm, IntPtr.Zero));
    }

    /// <inheritdoc />
    public void ReduceScatter(Tensor input, Tensor output, ReduceOp op = ReduceOp.Sum)
    {
        var t = SameType("ncclReduceScatter", input, output);
        Sizes("ncclReduceScatter", input.numel(), output.numel() * WorldSize);
        var (src, dst) = (TensorMemory.DataPointer(input), TensorMemory.DataPointer(output));
        Call("ncclReduceScatter", input, () => _api.ReduceScatter(src, dst, (ulong)output.numel(), t, op, _comm, IntPtr.Zero));
    }

    /// <inheritdoc />
    public void Barrier()
    {
        using var token = zeros(1, device: Device);
        AllReduce(token);
        if (!_api.AcceptsHostBuffers) cuda.synchronize();
    }

    /// <summary>Aborts the communicator (<c>ncclCommAbort</c>): pending and future calls fail instead of waiting for a dead peer.</summary>
    public void Abort()
    {
        var c = Interlocked.Exchange(ref _comm, IntPtr.Zero);
        if (c != IntPtr.Zero) _api.CommAbort(c);
    }

    /// <summary>Destroys the communicator (<c>ncclCommDestroy</c>).</summary>
    public void Dispose()
    {
        var c = Interlocked.Exchange(ref _comm, IntPtr.Zero);
        if (c != IntPtr.Zero) NcclErrors.Check(_api, _api.CommDestroy(c), "ncclCommDestroy", Rank, WorldSize);
    }

    private void Call(string call, Tensor tensor, Func<int> native)
    {
        if (_comm == IntPtr.Zero) throw new CollectiveException(Rank, WorldSize, call, "the communicator was destroyed or aborted");
        NcclErrors.Check(_api, native(), call, Rank, WorldSize, _comm);
        if (SynchronizeEachCall && tensor.device_type == DeviceType.CUDA) cuda.synchronize();
    }

    private NcclDataType TypeOf(string call, Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (t.device_type != DeviceType.CUDA && !_api.AcceptsHostBuffers)
            throw new ArgumentException($"rank {Rank}/{WorldSize}: {call} needs a CUDA tensor, got one on {t.device}", nameof(t));
        if (!t.is_contiguous()) throw new ArgumentException($"rank {Rank}/{WorldSize}: {call} needs a contiguous tensor (shape [{string.Join(", ", t.shape)}])", nameof(t));
        return t.dtype switch
        {
            ScalarType.BFloat16 => NcclDataType.BFloat16,
            ScalarType.Float16 => NcclDataType.Float16,
            ScalarType.Float32 => NcclDataType.Float32,
            ScalarType.Float64 => NcclDataType.Float64,
            ScalarType.Int32 => NcclDataType.Int32,
            ScalarType.Int64 => NcclDataType.Int64,
            ScalarType.Int8 => NcclDataType.Int8,
            ScalarType.Byte => NcclDataType.Uint8,
            _ => throw new ArgumentException($"rank {Rank}/{WorldSize}: {call}: NCCL has no element type for {t.dtype}", nameof(t)),
        };
    }

    private NcclDataType SameType(string call, Tensor input, Tensor output)
    {
        var t = TypeOf(call, input);
        if (TypeOf(call, output) != t) throw new ArgumentException($"rank {Rank}/{WorldSize}: {call}: input is {input.dtype}, output {output.dtype}", nameof(output));
        return t;
    }

    private void Sizes(string call, long actual, long expected)
    {
        if (actual != expected) throw new ArgumentException($"rank {Rank}/{WorldSize}: {call}: expected {expected} elements, got {actual}");
    }
}
