using static TorchSharp.torch;

namespace Peft.Core.Distributed;

/// <summary>Reduction of <see cref="ICollectives.AllReduce"/> / <see cref="ICollectives.ReduceScatter"/> (NCCL <c>ncclRedOp_t</c>, torch <c>ReduceOp</c>).</summary>
public enum ReduceOp
{
    /// <summary>Element-wise sum.</summary>
    Sum = 0,

    /// <summary>Element-wise product.</summary>
    Prod = 1,

    /// <summary>Element-wise maximum.</summary>
    Max = 2,

    /// <summary>Element-wise minimum.</summary>
    Min = 3,

    /// <summary>Element-wise mean over ranks (NCCL ≥ 2.10 <c>ncclAvg</c>).</summary>
    Avg = 4,
}

/// <summary>
/// The collective operations one rank of a process group runs (PyTorch <c>torch.distributed</c>'s
/// <c>all_reduce</c> / <c>broadcast</c> / <c>all_gather_into_tensor</c> / <c>reduce_scatter_tensor</c> / <c>barrier</c>).
/// Every rank must call the same operations in the same order with tensors of the same shape and dtype.
/// </summary>
/// <remarks>
/// Implementations: <see cref="Nccl.NcclCollectives"/> (CUDA tensors, one process per GPU) and
/// <see cref="InProcessGroup"/> (threads of one process, CPU tensors; for tests and CPU runs). Tensors are updated in
/// place and stay owned by the caller. A failed or timed-out call throws <see cref="CollectiveException"/> naming the
/// rank and the call.
/// </remarks>
public interface ICollectives : IDisposable
{
    /// <summary>This process's rank, 0 ≤ Rank &lt; WorldSize.</summary>
    int Rank { get; }

    /// <summary>Number of ranks.</summary>
    int WorldSize { get; }

    /// <summary>Where tensors passed to this group must live (a CUDA device for NCCL, the CPU for the in-process group).</summary>
    Device Device { get; }

    /// <summary>Reduces <paramref name="tensor"/> (contiguous, any shape) over all ranks in place; every rank gets the result.</summary>
    void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum);

    /// <summary>Copies rank <paramref name="root"/>'s <paramref name="tensor"/> into every rank's <paramref name="tensor"/>.</summary>
    void Broadcast(Tensor tensor, int root = 0);

    /// <summary>
    /// Concatenates every rank's <paramref name="input"/> (n elements) into <paramref name="output"/> (WorldSize · n
    /// elements, rank r's part at [r·n, (r+1)·n)) on every rank (torch <c>all_gather_into_tensor</c>).
    /// </summary>
    void AllGather(Tensor input, Tensor output);

    /// <summary>
    /// Reduces <paramref name="input"/> (WorldSize · n elements) over ranks and leaves part r (n elements) in rank r's
    /// <paramref name="output"/> (torch <c>reduce_scatter_tensor</c>).
    /// </summary>
    void ReduceScatter(Tensor input, Tensor output, ReduceOp op = ReduceOp.Sum);

    /// <summary>Returns when every rank has called it.</summary>
    void Barrier();
}
