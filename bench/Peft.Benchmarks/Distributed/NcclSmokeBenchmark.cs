using System.Diagnostics;
using Peft.Core.Distributed;
using static TorchSharp.torch;

namespace Peft.Benchmarks.Distributed;

/// <summary>
/// Multi-GPU check (run under peft-run, one process per GPU): all-reduce (sum, avg, max), broadcast, all-gather and
/// reduce-scatter on CUDA tensors of bf16 / fp16 / fp32 against values computed here; then all-reduce bandwidth
/// (256 MiB fp32, median of 10) and the cost of synchronising after each call (200 × 4 KiB all-reduces, host sync
/// after each vs once at the end). Every rank prints one JSON line.
/// </summary>
public sealed class NcclSmokeBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "nccl_smoke";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        var env = DistributedBench.Env;
        using var group = ProcessGroup.InitNccl(env);
        var dev = group.Device;
        int w = group.WorldSize, r = group.Rank;
        var failures = new List<string>();
        void Expect(string what, Tensor actual, Tensor expected)
        {
            using var scope = NewDisposeScope();
            double diff = (actual.to(ScalarType.Float64).cpu() - expected.to(ScalarType.Float64).cpu()).abs().max().item<double>();
            if (diff > 1e-2) failures.Add($"{what}: max diff {diff}");
        }
        foreach (var dt in new[] { ScalarType.BFloat16, ScalarType.Float16, ScalarType.Float32 })
        {
            using var scope = NewDisposeScope();
            var t = full([1000], r + 1, dtype: dt, device: dev);
            group.AllReduce(t);
            Expect($"{dt} sum", t, full([1000], w * (w + 1) / 2.0));
            var a = full([1000], (double)(r + 1), dtype: dt, device: dev);
            group.AllReduce(a, ReduceOp.Avg);
            Expect($"{dt} avg", a, full([1000], (w + 1) / 2.0));
            var m = full([10], (double)r, dtype: dt, device: dev);
            group.AllReduce(m, ReduceOp.Max);
            Expect($"{dt} max", m, full([10], (double)(w - 1)));
            var b = full([10], 10.0 + r, dtype: dt, device: dev);
            group.Broadcast(b, root: w - 1);
            Expect($"{dt} broadcast", b, full([10], 10.0 + w - 1));
            var g = full([4], (double)r, dtype: dt, device: dev);
            var gathered = empty([4 * w], dtype: dt, device: dev);
            group.AllGather(g, gathered);
            Expect($"{dt} all_gather", gathered, arange(w, dtype: ScalarType.Float64).repeat_interleave(4));
            var input = arange(4 * w, dtype: ScalarType.Float32).to(dt).to(dev);
            var part = empty([4], dtype: dt, device: dev);
            group.ReduceScatter(input, part);
            Expect($"{dt} reduce_scatter", part, arange(4 * r, 4 * r + 4, dtype: ScalarType.Float64) * w);
        }
        using var big = ones([64L << 20], dtype: ScalarType.Float32, device: dev);
        var ts = new List<double>();
        for (int i = 0; i < 12; i++)
        {
            cuda.synchronize();
            var sw = Stopwatch.StartNew();
            group.AllReduce(big);
            cuda.synchronize();
            if (i >= 2) ts.Add(sw.Elapsed.TotalSeconds);
        }
        double busBw = 2.0 * (w - 1) / w * big.numel() * 4 / HfMirror.MirrorSetup.Median(ts) / 1e9;
        using var small = ones([1024], dtype: ScalarType.Float32, device: dev);
        double Loop(bool syncEach)
        {
            cuda.synchronize();
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < 200; i++)
            {
                group.AllReduce(small);
                if (syncEach) cuda.synchronize();
            }
            cuda.synchronize();
            return sw.Elapsed.TotalSeconds / 200;
        }
        Loop(false);
        double asyncS = Loop(false), syncS = Loop(true);
        group.Barrier();
        report(new Dictionary<string, object?>
        {
            ["case"] = "nccl_smoke", ["rank"] = r, ["world"] = w, ["ok"] = failures.Count == 0, ["failures"] = failures,
            ["nccl_lib"] = Peft.Core.Distributed.Nccl.NcclNative.Load().Path,
            ["allreduce_256mib_median_s"] = Math.Round(HfMirror.MirrorSetup.Median(ts), 6), ["bus_bandwidth_gb_s"] = Math.Round(busBw, 1),
            ["small_allreduce_us_no_sync"] = Math.Round(asyncS * 1e6, 1), ["small_allreduce_us_sync_each"] = Math.Round(syncS * 1e6, 1),
        });
    }
}
