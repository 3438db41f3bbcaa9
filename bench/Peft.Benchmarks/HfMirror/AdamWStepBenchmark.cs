using Peft.Transformers;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// <c>adamw_step</c>: the optimizer phase of <c>full_step</c> alone, mirrored by <c>bench/py/hf_phases.py adamw_step</c>:
/// AdamW (lr 2e-4, wd 0.01, torch defaults) over every parameter of the random-init model, each with a fixed random
/// gradient (N(0, 1e-3)), timed per <c>step()</c> (gradients kept between steps). Reports <c>steps_per_s</c>.
/// </summary>
public sealed class AdamWStepBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "adamw_step";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        using var model = MirrorSetup.BuildModel(options);
        var named = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        var g = new Generator((ulong)(options.Seed + 3));
        foreach (var (_, p) in named)
            p.grad = (randn(p.shape, generator: g, dtype: ScalarType.Float32) * 1e-3).to(p.dtype).to(p.device).DetachFromDisposeScope();
        var group = new ParamGroup(named.Select(p => p.name).ToList(), named.Select(p => p.parameter).ToList(), WeightDecay: 0.01) { Lr = 2e-4 };
        using var opt = new AdamW([group]);
        var ts = MirrorSetup.Time(opt.Step, options.Warmup, options.Repeats, options);
        double s = MirrorSetup.Median(ts);
        var row = MirrorSetup.Common(Name, options, ts);
        row["s_per_step"] = Math.Round(s, 6);
        row["steps_per_s"] = Math.Round(1 / s, 3);
        row["params"] = named.Sum(p => p.parameter.numel());
        row["tensors"] = named.Count;
        row["peak_rss_mb"] = MirrorSetup.PeakRssMb();
        report(row);
        opt.ZeroGrad();
    }
}
