using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>hf_lora_bench.py <c>peak</c>: plain 2048³ fp32 matmul GFLOP/s (the BLAS path in use, see <c>mkl_path</c>).</summary>
public sealed class PeakBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "peak";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        const int n = 2048;
        using var a = randn([n, n], device: MirrorSetup.DeviceOf(options));
        using var b = randn([n, n], device: MirrorSetup.DeviceOf(options));
        var ts = MirrorSetup.Time(() => matmul(a, b).Dispose(), options.Warmup, Math.Max(options.Repeats, 10), options);
        var row = MirrorSetup.Common(Name, options, ts);
        row["op"] = $"matmul {n}x{n}x{n} fp32";
        row["gflops"] = Math.Round(2.0 * n * n * n / MirrorSetup.Median(ts) / 1e9, 1);
        row["peak_rss_mb"] = MirrorSetup.PeakRssMb();
        report(row);
    }
}
