using System.Diagnostics;
using Peft.Core;
using Peft.Transformers;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// <c>trainer_lora</c> / <c>trainer_full</c>: the mirror's step through the whole <see cref="Trainer"/> (data loader,
/// collator, clipping at 1, the linear schedule, logging, callbacks), as <c>bench/py/hf_trainer_step.py</c> runs HF's
/// <c>Trainer</c>: the mirror's model (bf16 on CUDA as hf_gpu_bench.py, fp32 on the CPU), LoRA r8 on q/v (PEFT's float32
/// adapters) or every parameter, <c>adamw_torch</c>, lr 2e-4, batch 8 of random rows of the mirror's length (labels =
/// ids), warm-up + timed steps, no saving, one log at the end. A callback syncs the device at every step end and takes
/// the time; the median of the timed steps' intervals is the step time (the same callback on the Python side).
/// </summary>
public abstract class TrainerStepBenchmark : IBenchmark
{
    /// <summary>True for LoRA, false for full fine-tuning.</summary>
    protected abstract bool UseLora { get; }

    /// <inheritdoc />
    public abstract string Name { get; }

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        int batch = MirrorSetup.Batch(options), seq = MirrorSetup.Seq(options);
        int steps = options.Warmup + Math.Max(1, options.Repeats) + 1;      // the first interval starts at the first step's end
        var model = MirrorSetup.BuildModel(options);
        using var pm = UseLora ? PeftModel.GetPeftModel(model, MirrorSetup.Lora()) : null;
        nn.Module<ModelInput, ModelOutput> net = pm is null ? model : pm;
        string dir = Path.Combine(Path.GetTempPath(), $"peft-trainer-step-{Environment.ProcessId}");
        var args = new TrainingArguments
        {
            OutputDir = dir, MaxSteps = steps, PerDeviceTrainBatchSize = batch, LearningRate = 2e-4, MaxGradNorm = 1.0,
            LoggingSteps = steps, SaveStrategy = IntervalStrategy.No, Seed = options.Seed, DisableTqdm = true, Device = options.Device,
            CudaGraphs = options.CudaGraphs,
        };
        var clock = new StepClock(options);
        var trainer = new Trainer(net, args, trainDataset: MirrorSetup.RandomRows(options, steps * batch, seq, seedOffset: 1), dataCollator: new DefaultDataCollator(), callbacks: [clock]);
        trainer.Train();
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        var intervals = clock.Ends.Zip(clock.Ends.Skip(1), (a, b) => b - a).Skip(options.Warmup).ToArray();
        double s = MirrorSetup.Median(intervals);
        var row = MirrorSetup.Common(Name, options, intervals);
        row["batch"] = batch;
        row["seq"] = seq;
        row["steps"] = steps;
        row["s_per_step"] = Math.Round(s, 6);
        row["tok_per_s"] = Math.Round(batch * seq / s, 1);
        row["loss_logged"] = trainer.State.LogHistory.Where(h => h.ContainsKey("loss")).Select(h => Math.Round(h["loss"], 4)).ToArray();
        row["cuda_graphs"] = options.CudaGraphs;
        row["peak_rss_mb"] = MirrorSetup.PeakRssMb();
        report(row);
        model.Dispose();
    }

    /// <summary>Syncs the device at each step end and records the time (seconds since the clock was made).</summary>
    private sealed class StepClock(BenchmarkOptions options) : ITrainerCallback
    {
        private readonly Stopwatch _watch = Stopwatch.StartNew();

        public List<double> Ends { get; } = [];

        public void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control)
        {
            MirrorSetup.Sync(options);
            Ends.Add(_watch.Elapsed.TotalSeconds);
        }
    }
}

/// <summary><c>trainer_lora</c>: <see cref="TrainerStepBenchmark"/> with LoRA r8 on q/v.</summary>
public sealed class TrainerLoraBenchmark : TrainerStepBenchmark
{
    /// <inheritdoc />
    protected override bool UseLora => true;

    /// <inheritdoc />
    public override string Name => "trainer_lora";
}

/// <summary><c>trainer_full</c>: <see cref="TrainerStepBenchmark"/> training every parameter.</summary>
public sealed class TrainerFullBenchmark : TrainerStepBenchmark
{
    /// <inheritdoc />
    protected override bool UseLora => false;

    /// <inheritdoc />
    public override string Name => "trainer_full";
}
