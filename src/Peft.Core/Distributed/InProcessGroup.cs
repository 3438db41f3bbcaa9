using TorchSharp;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Distributed;

/// <summary>
/// A process group whose ranks are threads of this process (a test double of NCCL, and a CPU fallback for one
/// machine): <see cref="Rank(int)"/> gives each thread its <see cref="ICollectives"/>. Reductions add the ranks'
/// tensors in rank order on every rank, so all ranks get bit-identical results. Tensors may live on any device; the
/// exchange goes through CPU copies.
/// </summary>
/// <remarks>
/// Every call waits for the other ranks at most <see cref="Timeout"/>; a rank that does not arrive (died, or called
/// a different operation) makes the others throw <see cref="CollectiveException"/> naming the call.
/// </remarks>
public sealed class InProcessGroup : IDisposable
{
    private readonly Barrier _barrier;
    private readonly Tensor?[] _slots;
    private readonly string?[] _calls;

    /// <summary>Creates a group of <paramref name="worldSize"/> ranks.</summary>
    /// <param name="worldSize">Number of ranks (threads), ≥ 1.</param>
    /// <param name="timeout">How long a rank waits for the others per call (default 60 s).</param>
    public InProcessGroup(int worldSize, TimeSpan? timeout = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        WorldSize = worldSize;
        Timeout = timeout ?? TimeSpan.FromSeconds(60);
        _barrier = new Barrier(worldSize);
        _slots = new Tensor?[worldSize];
        _calls = new string?[worldSize];
    }

    /// <summary>Number of ranks.</summary>
    public int WorldSize { get; }

    /// <summary>Per-call wait limit.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>The collectives of rank <paramref name="rank"/> (call from that rank's thread).</summary>
    public ICollectives Rank(int rank)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, WorldSize);
        return new Member(this, rank);
    }

    /// <summary>Releases the barrier.</summary>
    public void Dispose() => _barrier.Dispose();

    private void Wait(int rank, string call)
    {
        bool arrived;
        try { arrived = _barrier.SignalAndWait(Timeout); }
        catch (BarrierPostPhaseException e) { throw new CollectiveException(rank, WorldSize, call, e.InnerException?.Message ?? e.Message, e); }
        if (!arrived) throw new CollectiveException(rank, WorldSize, call, $"the other ranks did not arrive within {Timeout.TotalSeconds:0.#} s (a rank died or called another operation)");
    }

    // Every rank deposits a CPU copy, waits, reads the others, waits again (so no copy is freed while read).
    private void Exchange(int rank, string call, Tensor mine, Action<Tensor[]> read)
    {
        using var scope = NewDisposeScope();
        _slots[rank] = mine.detach().cpu().contiguous().clone();
        _calls[rank] = call;
        Wait(rank, call);
        var slots = _slots.Select(s => s!).ToArray();
        for (int r = 0; r < WorldSize; r++)
            if (_calls[r] != call)
                throw new CollectiveException(rank, WorldSize, call, $"rank {r} called {_calls[r]} at the same point");
        for (int r = 0; r < WorldSize; r++)
            if (!slots[r].shape.SequenceEqual(slots[0].shape) || slots[r].dtype != slots[0].dtype)
                throw new CollectiveException(rank, WorldSize, call, $"rank {r} passed [{string.Join(", ", slots[r].shape)}] {slots[r].dtype}, rank 0 [{string.Join(", ", slots[0].shape)}] {slots[0].dtype}");
        read(slots);
        Wait(rank, call);
    }

    private static Tensor Reduce(Tensor[] parts, ReduceOp op)
    {
        var acc = parts[0].clone();
        for (int r = 1; r < parts.Length; r++)
        {
            switch (op)
            {
                case ReduceOp.Sum or ReduceOp.Avg: acc.add_(parts[r], HeldScalars.One); break;
                case ReduceOp.Prod: acc.mul_(parts[r]); break;
                case ReduceOp.Max: acc = acc.maximum(parts[r]); break;
                case ReduceOp.Min: acc = acc.minimum(parts[r]); break;
                default: throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduction");
            }
        }
        return op == ReduceOp.Avg ? acc.div_(HeldScalars.Of(parts.Length)) : acc;
    }

    private sealed class Member(InProcessGroup group, int rank) : ICollectives
    {
        public int Rank => rank;

        public int WorldSize => group.WorldSize;

        public Device Device => CPU;

        public void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum) =>
            group.Exchange(rank, $"AllReduce({op})", tensor, parts => { using var _ = no_grad(); tensor.copy_(Reduce(parts, op)); });

        public void Broadcast(Tensor tensor, int root = 0)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(root);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(root, WorldSize);
            group.Exchange(rank, $"Broadcast(root {root})", tensor, parts => { using var _ = no_grad(); tensor.copy_(parts[root]); });
        }

        public void AllGather(Tensor input, Tensor output)
        {
            CheckSizes("AllGather", output.numel(), input.numel() * WorldSize);
            group.Exchange(rank, "AllGather", input, parts =>
            {
                using var _ = no_grad();
                output.view(-1).copy_(cat(parts.Select(p => p.view(-1)).ToArray()));
            });
        }

        public void ReduceScatter(Tensor input, Tensor output, ReduceOp op = ReduceOp.Sum)
        {
            long n = output.numel();
            CheckSizes("ReduceScatter", input.numel(), n * WorldSize);
            group.Exchange(rank, $"ReduceScatter({op})", input, parts =>
            {
                using var _ = no_grad();
                output.view(-1).copy_(Reduce(parts, op).view(-1).narrow(0, rank * n, n));
            });
        }

        public void Barrier()
        {
            using var token = zeros(1);
            group.Exchange(rank, "Barrier", token, _ => { });
        }

        public void Dispose() { }

        private void CheckSizes(string call, long actual, long expected)
        {
            if (actual != expected) throw new CollectiveException(rank, WorldSize, call, $"expected {expected} elements, got {actual}");
        }
    }
}
