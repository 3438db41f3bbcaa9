using Peft.Core.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// The Trainer's data-parallel strategy (PyTorch DDP + DistributedSampler as HF Trainer uses them under torchrun):
/// every rank holds a full copy of the model, reads its <see cref="DistributedSampler"/> shard of each global batch,
/// and the gradients of the trainable parameters (for LoRA: the adapters only) are averaged over ranks after backward
/// and before clipping and the optimizer step, in flat buckets (<see cref="GradientBuckets"/>). Only rank 0 logs,
/// evaluates and writes checkpoints. <see cref="None"/> (one process) makes every hook a no-op.
/// </summary>
/// <remarks>
/// Equal to one process with the global batch: the step's items (shifted labels, token labels or rows, as
/// <c>TrainStep</c> counts them) are summed over ranks first, so each rank weights its loss by its share of the global
/// items; the logged loss is the ranks' sum of weighted losses. Gradients are averaged after the backward pass (no
/// overlap with it: TorchSharp 0.107 has no parameter post-accumulate-grad hooks).
/// </remarks>
public sealed class DataParallel
{
    private static readonly Lazy<DataParallel> FromEnv = new(() =>
    {
        var env = DistributedEnvironment.FromEnvironment();
        var group = env.IsDistributed ? ProcessGroup.InitNccl(env) : null;
        // The process-wide group says goodbye at exit (PyTorch's destroy_process_group): without it a rank that finishes
        // first closes its socket unannounced and the others take it for a dead rank (seen on 2×H200: exit 3 at a normal end).
        if (group is not null) AppDomain.CurrentDomain.ProcessExit += (_, _) => group.Dispose();
        return new DataParallel(group);
    });

    private readonly ICollectives? _group;

    /// <summary>Creates the strategy over <paramref name="collectives"/> (null = one process).</summary>
    /// <param name="collectives">This rank's process group (NCCL, or <see cref="InProcessGroup"/> for tests); not disposed here.</param>
    /// <param name="bucketBytes">Gradient bucket size (PyTorch DDP's <c>bucket_cap_mb</c>, default 25 MiB).</param>
    public DataParallel(ICollectives? collectives, long bucketBytes = 25L << 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketBytes, 1);
        _group = collectives is { WorldSize: > 1 } ? collectives : null;
        Rank = collectives?.Rank ?? 0;
        WorldSize = collectives?.WorldSize ?? 1;
        BucketBytes = bucketBytes;
    }

    /// <summary>One process: no sharding, no communication.</summary>
    public static DataParallel None { get; } = new(null);

    /// <summary>
    /// The process-wide strategy from torchrun's environment (<see cref="DistributedEnvironment"/>): <see cref="None"/>
    /// without <c>WORLD_SIZE</c> &gt; 1, else an NCCL group joined once per process (PyTorch's default process group).
    /// </summary>
    public static DataParallel FromEnvironment() => FromEnv.Value;

    /// <summary>This rank.</summary>
    public int Rank { get; }

    /// <summary>Number of ranks.</summary>
    public int WorldSize { get; }

    /// <summary>Whether this rank logs, evaluates and saves (HF <c>is_world_process_zero</c>).</summary>
    public bool IsMain => Rank == 0;

    /// <summary>Gradient bucket size in bytes.</summary>
    public long BucketBytes { get; }

    /// <summary>This rank's sample order of an epoch (<see cref="DistributedSampler"/> with PyTorch's rule).</summary>
    public int[] Order(int length, bool shuffle, int seed, int epoch, bool dropLast) =>
        new DistributedSampler(length, WorldSize, Rank, shuffle, seed, dropLast).Indices(epoch);

    /// <summary>Number of rows this rank reads per epoch.</summary>
    public int RowsPerEpoch(int length, bool dropLast) => new DistributedSampler(length, WorldSize, Rank, shuffle: false, dropLast: dropLast).NumSamples;

    /// <summary>The sum of <paramref name="local"/> over ranks.</summary>
    public double Sum(double local)
    {
        if (_group is null) return local;
        using var t = tensor(new[] { local }, ScalarType.Float64, DeviceOfGroup());
        _group.AllReduce(t);
        return t.cpu().item<double>();
    }

    /// <summary>Rank 0's <paramref name="flag"/> on every rank (flow decisions made from rank-0-only state, such as early stopping).</summary>
    public bool FromMain(bool flag)
    {
        if (_group is null) return flag;
        using var t = tensor(new[] { flag ? 1L : 0L }, ScalarType.Int64, DeviceOfGroup());
        _group.Broadcast(t);
        return t.cpu().item<long>() != 0;
    }

    /// <summary>
    /// Copies rank 0's values of <paramref name="parameters"/> to every rank (PyTorch DDP broadcasts the module state at
    /// construction), so ranks start equal whatever their initialisation drew.
    /// </summary>
    public void BroadcastFromMain(IReadOnlyList<Parameter> parameters)
    {
        if (_group is null) return;
        using var _ = no_grad();
        foreach (var p in parameters)
        {
            using var scope = NewDisposeScope();
            var buffer = p.device == _group.Device ? p.detach().contiguous() : p.detach().to(_group.Device).contiguous();
            _group.Broadcast(buffer);
            if (!ReferenceEquals(buffer, p)) p.copy_(buffer);
        }
    }

    /// <summary>Averages the gradients of <paramref name="parameters"/> over ranks in place (a missing gradient counts as zeros).</summary>
    public void AverageGradients(IReadOnlyList<Parameter> parameters)
    {
        if (_group is null) return;
        GradientBuckets.AllReduceMean(_group, parameters, BucketBytes);
    }

    private Device DeviceOfGroup() => _group?.Device ?? CPU;
}
