using System.Diagnostics;
using Peft.Transformers.Optimization;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// <c>clip_host</c>: the host cost of the Trainer's clip + multi-tensor AdamW step, per step, on the mirror model's
/// parameters (HF's decay / no-decay groups; <c>--model opt_tiny</c> on the CPU: OPT-125m's 196 parameters at a width
/// where kernels cost nothing, the regime of the eager GPU step). Three settings alternate in one process over 4 rounds
/// of <c>--repeats</c> steps (fresh gradients before each, not timed): the step alone; clipping over one buffer of all
/// gradients in model order (the Trainer before 2026-12-02: the step then copies each bucket's gradients again); and
/// clipping in the optimizer's runs (<see cref="GradClip.RunsOf"/>, now: the step views the clipped buffers).
/// Reports the median ms of each setting and the per-round medians.
/// </summary>
public sealed class ClipHostBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "clip_host";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        using var model = MirrorSetup.BuildModel(options);
        var named = model.named_parameters().Select(p => (p.name, p.parameter)).ToList();
        var parameters = named.Select(p => (Tensor)p.parameter).ToList();
        using var opt = new AdamW(DecayRule.Groups(named, 0.01, model), @foreach: true);
        var runs = GradClip.RunsOf(opt, parameters);
        var grads = parameters.Select(p => randn_like(p).detach()).ToList();
        var settings = new (string Name, Action? Clip)[]
        {
            ("step", null),
            ("clip_model_order", () => GradClip.NormAndClip(parameters, 1.0, @foreach: true)),
            ("clip_in_runs", () => GradClip.NormAndClip(runs, 1.0, @foreach: true)),
        };
        var all = settings.ToDictionary(s => s.Name, _ => new List<double>());
        var rounds = settings.ToDictionary(s => s.Name, _ => new List<double>());
        int steps = Math.Max(5, options.Repeats);
        for (int round = 0; round < 4; round++)
            foreach (var (name, clip) in settings)
            {
                var times = new List<double>();
                for (int i = 0; i < steps; i++)
                {
                    for (int k = 0; k < parameters.Count; k++) parameters[k].grad = grads[k].clone();
                    var sw = Stopwatch.StartNew();
                    using (NewDisposeScope())
                    {
                        clip?.Invoke();
                        opt.SetLr(1e-4);
                        opt.Step();
                        opt.ZeroGrad();
                    }
                    times.Add(sw.Elapsed.TotalMilliseconds);
                }
                all[name].AddRange(times);
                rounds[name].Add(Math.Round(MirrorSetup.Median(times), 3));
            }
        var row = MirrorSetup.Common(Name, options, all["clip_in_runs"].Select(ms => ms / 1000).ToArray());
        row["parameters"] = parameters.Count;
        row["runs"] = runs.Count;
        foreach (var (name, _) in settings)
        {
            row[name + "_ms"] = Math.Round(MirrorSetup.Median(all[name]), 3);
            row[name + "_round_ms"] = rounds[name].ToArray();
        }
        report(row);
    }
}
