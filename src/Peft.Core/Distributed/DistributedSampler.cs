using static TorchSharp.torch;

namespace Peft.Core.Distributed;

/// <summary>
/// PyTorch's <c>torch.utils.data.distributed.DistributedSampler</c>: the indices rank <see cref="Rank"/> reads in an
/// epoch. With shuffling, the epoch's order is <c>torch.randperm(n, generator)</c> of a generator seeded with
/// <c>seed + epoch</c>; without <see cref="DropLast"/> the order is padded by repeating its head up to
/// <see cref="TotalSize"/>, with it the tail is cut; rank r takes positions r, r + W, r + 2W, …
/// </summary>
/// <remarks>
/// Consequence used by the data-parallel Trainer: the r-th rank's b-th batch of size P holds positions
/// <c>[b·P·W, (b+1)·P·W)</c> of the padded order at stride W, so batch b over all ranks is exactly batch b of size
/// P·W of one process reading the same order.
/// </remarks>
public sealed class DistributedSampler
{
    /// <summary>Creates the sampler (PyTorch's argument order and defaults).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative length, a world size below 1, or a rank outside it.</exception>
    public DistributedSampler(int length, int numReplicas, int rank, bool shuffle = true, long seed = 0, bool dropLast = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfLessThan(numReplicas, 1);
        if (rank < 0 || rank >= numReplicas) throw new ArgumentOutOfRangeException(nameof(rank), $"Invalid rank {rank}, rank should be in the interval [0, {numReplicas - 1}]");
        (Length, NumReplicas, Rank, Shuffle, Seed, DropLast) = (length, numReplicas, rank, shuffle, seed, dropLast);
        NumSamples = dropLast && length % numReplicas != 0
            ? (int)Math.Ceiling((length - numReplicas) / (double)numReplicas)
            : (int)Math.Ceiling(length / (double)numReplicas);
        TotalSize = NumSamples * numReplicas;
    }

    /// <summary>Dataset length.</summary>
    public int Length { get; }

    /// <summary>World size.</summary>
    public int NumReplicas { get; }

    /// <summary>This rank.</summary>
    public int Rank { get; }

    /// <summary>Whether each epoch is a seeded permutation.</summary>
    public bool Shuffle { get; }

    /// <summary>Base seed.</summary>
    public long Seed { get; }

    /// <summary>Cut the tail instead of padding.</summary>
    public bool DropLast { get; }

    /// <summary>Indices per rank per epoch (PyTorch <c>num_samples</c>).</summary>
    public int NumSamples { get; }

    /// <summary>Indices over all ranks per epoch (PyTorch <c>total_size</c>).</summary>
    public int TotalSize { get; }

    /// <summary>The epoch whose order <see cref="Indices()"/> returns (PyTorch <c>set_epoch</c>).</summary>
    public int Epoch { get; private set; }

    /// <summary>Sets the epoch (PyTorch <c>set_epoch</c>).</summary>
    public void SetEpoch(int epoch) => Epoch = epoch;

    /// <summary>This rank's indices of <see cref="Epoch"/> (PyTorch <c>list(iter(sampler))</c>).</summary>
    public int[] Indices() => Indices(Epoch);

    /// <summary>This rank's indices of epoch <paramref name="epoch"/>.</summary>
    public int[] Indices(int epoch)
    {
        var order = GlobalOrder(epoch);
        var mine = new int[NumSamples];
        for (int i = 0; i < NumSamples; i++) mine[i] = order[Rank + i * NumReplicas];
        return mine;
    }

    /// <summary>The padded (or cut) order of all ranks, <see cref="TotalSize"/> long.</summary>
    public int[] GlobalOrder(int epoch)
    {
        var order = BaseOrder(Length, Shuffle, Seed + epoch);
        if (DropLast) return order[..TotalSize];
        var padded = new int[TotalSize];
        for (int i = 0; i < TotalSize; i++) padded[i] = order.Length == 0 ? throw new InvalidOperationException("DistributedSampler over an empty dataset cannot pad") : order[i % order.Length];
        return padded;
    }

    /// <summary><c>torch.randperm(length, generator=torch.Generator().manual_seed(seed))</c>, or 0..length-1 unshuffled.</summary>
    public static int[] BaseOrder(int length, bool shuffle, long seed)
    {
        if (!shuffle) return Enumerable.Range(0, length).ToArray();
        using var g = new Generator(unchecked((ulong)seed));
        using var perm = randperm(length, generator: g);
        return perm.data<long>().Select(x => (int)x).ToArray();
    }
}
