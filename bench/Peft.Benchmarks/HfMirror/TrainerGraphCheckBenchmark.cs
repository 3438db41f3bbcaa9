using Microsoft.Extensions.Logging;
using Peft.Core;
using Peft.Datasets;
using Peft.Transformers;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// <c>trainer_graph_check</c> (proof on the GPU, no Python side): <see cref="Trainer"/> with
/// <see cref="TrainingArguments.CudaGraphs"/> end to end. The mirror's model (fp32) with LoRA on q/v, the model's and
/// LoRA's dropout 0.1 (so every step draws masks from the CUDA generator), 48 random rows of one length, batch 8,
/// warm-up then linear decay, clipping at 1, 10 steps (two epochs, shuffled). Three runs from the same seeds:
/// (A) the graph step's body eagerly (<c>Trainer.GraphFormWithoutCapture</c>), (B) the same again (the control: how
/// far two eager runs of the same kernels drift apart on this GPU), (graph) <c>CudaGraphs = true</c>. Reports the
/// logged losses and gradient norms, the max |difference| of losses and of every trained parameter against A and the
/// Trainer's eager-step warnings; fails (exit code ≠ 0) unless graph−A ≤ 10·(B−A) + 1e-5·scale and no step ran
/// eagerly (all rows have one length, so every step after the first is a replay).
/// </summary>
public sealed class TrainerGraphCheckBenchmark : IBenchmark
{
    private const int Steps = 10, Rows = 48;
    private const double Dropout = 0.1;

    /// <inheritdoc />
    public string Name => "trainer_graph_check";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        // on the CPU (a smoke run of the harness) only A and B run: graphs need CUDA
        bool isCuda = options.Device == "cuda";
        var a = Train(options, graphs: false);
        var b = Train(options, graphs: false);
        var g = isCuda ? Train(options, graphs: true) : a;
        double lossScale = a.Losses.Max(Math.Abs), paramScale = a.Params.Max(Math.Abs);
        double controlLoss = MaxDiff(a.Losses, b.Losses), controlParam = MaxDiff(a.Params, b.Params);
        double gLoss = MaxDiff(a.Losses, g.Losses), gParam = MaxDiff(a.Params, g.Params);
        bool ok = gLoss <= 10 * controlLoss + 1e-5 * lossScale && gParam <= 10 * controlParam + 1e-5 * paramScale
            && g.Warnings.Count == 0 && g.Losses.Length == Steps && isCuda;
        report(new Dictionary<string, object?>
        {
            ["case"] = "trainer_graph_check", ["model"] = options.Model, ["steps"] = Steps, ["dropout"] = Dropout,
            ["losses_a"] = a.Losses.Select(x => Math.Round(x, 7)).ToArray(),
            ["losses_graph"] = g.Losses.Select(x => Math.Round(x, 7)).ToArray(),
            ["grad_norms_a"] = a.Norms.Select(x => Math.Round(x, 6)).ToArray(),
            ["grad_norms_graph"] = g.Norms.Select(x => Math.Round(x, 6)).ToArray(),
            ["loss_diff_b_vs_a"] = controlLoss, ["param_diff_b_vs_a"] = controlParam,
            ["loss_diff_graph_vs_a"] = gLoss, ["param_diff_graph_vs_a"] = gParam,
            ["graph_warnings"] = g.Warnings.ToArray(), ["s_eager"] = Math.Round(a.Seconds, 3), ["s_graph"] = Math.Round(g.Seconds, 3),
            ["pass"] = isCuda ? ok : null,
        });
        if (isCuda && !ok)
            throw new InvalidOperationException($"trainer_graph_check failed: loss diff {gLoss:G3} (control {controlLoss:G3}), param diff {gParam:G3} (control {controlParam:G3}), eager-step warnings {g.Warnings.Count}, logged steps {g.Losses.Length}/{Steps}");
    }

    private sealed record Result(double[] Losses, double[] Norms, double[] Params, List<string> Warnings, double Seconds);

    private static Result Train(BenchmarkOptions options, bool graphs)
    {
        var model = MirrorSetup.BuildModel(options with { Dtype = "fp32" }, Dropout);
        manual_seed(options.Seed);
        if (options.Device == "cuda") cuda.manual_seed_all(options.Seed);
        using var pm = PeftModel.GetPeftModel(model, MirrorSetup.Lora(Dropout));
        string dir = Path.Combine(Path.GetTempPath(), $"peft-trainer-graph-check-{Environment.ProcessId}-{graphs}");
        var args = new TrainingArguments
        {
            OutputDir = dir, MaxSteps = Steps, PerDeviceTrainBatchSize = 8, LearningRate = 1e-3, WarmupSteps = 2, WeightDecay = 0.01,
            MaxGradNorm = 1.0, LoggingSteps = 1, SaveStrategy = IntervalStrategy.No, Seed = options.Seed, DisableTqdm = true,
            Device = options.Device, CudaGraphs = graphs,
        };
        var logger = new WarningLog();
        var trainer = new Trainer(pm, args, trainDataset: MirrorSetup.RandomRows(options, Rows, options.Seq > 0 ? options.Seq : 256, seedOffset: 7), dataCollator: new DefaultDataCollator(), logger: logger)
        {
            GraphFormWithoutCapture = !graphs,
        };
        var sw = System.Diagnostics.Stopwatch.StartNew();
        trainer.Train();
        MirrorSetup.Sync(options);
        double seconds = sw.Elapsed.TotalSeconds;
        var steps = trainer.State.LogHistory.Where(h => h.ContainsKey("loss")).ToList();
        double[] flat;
        using (NewDisposeScope())
            flat = cat(pm.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.parameter.detach().reshape(-1).to(ScalarType.Float64)).ToArray())
                .cpu().data<double>().ToArray();
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        return new Result(steps.Select(h => h["loss"]).ToArray(), steps.Select(h => h.TryGetValue("grad_norm", out var n) ? n : double.NaN).ToArray(),
            flat, logger.Warnings, seconds);
    }

    private static double MaxDiff(double[] a, double[] b)
    {
        if (a.Length != b.Length) return -1;   // differing lengths (a failed run): never within a bound
        double m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs(a[i] - b[i]));
        return m;
    }

    /// <summary>Collects the Trainer's warnings (the CUDA-graph step's "ran eagerly" reasons).</summary>
    private sealed class WarningLog : ILogger
    {
        public List<string> Warnings { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Warning) Warnings.Add(formatter(state, exception));
        }
    }
}
