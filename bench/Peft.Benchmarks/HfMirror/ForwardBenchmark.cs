using Peft.Core;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>hf_lora_bench.py <c>forward</c>: the base model in eval mode under no_grad, logits for the whole batch.</summary>
public sealed class ForwardBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "forward";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        using var model = MirrorSetup.BuildModel(options);
        model.eval();
        using var ids = MirrorSetup.RandomBatch(options);
        var ts = MirrorSetup.Time(() =>
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            model.forward(new ModelInput { InputIds = ids });
        }, options.Warmup, options.Repeats, options);
        double s = MirrorSetup.Median(ts);
        var row = MirrorSetup.Common(Name, options, ts);
        row["batch"] = MirrorSetup.Batch(options);
        row["seq"] = MirrorSetup.Seq(options);
        row["s_per_forward"] = Math.Round(s, 6);
        row["s_per_step"] = Math.Round(s, 6);
        row["tok_per_s"] = Math.Round(MirrorSetup.Batch(options) * MirrorSetup.Seq(options) / s, 1);
        row["peak_rss_mb"] = MirrorSetup.PeakRssMb();
        report(row);
    }
}
