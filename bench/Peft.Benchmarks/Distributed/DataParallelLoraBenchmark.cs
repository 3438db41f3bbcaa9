using TorchSharp;
using System.Diagnostics;
using Peft.Core;
using Peft.Core.Distributed;
using Peft.Transformers;
using static TorchSharp.torch;

namespace Peft.Benchmarks.Distributed;

/// <summary>
/// The data-parallel acceptance run: LoRA (r 8, α 16, q/v) on the random-init Llama-1B shape with the Trainer
/// in bf16 (float32 masters), random token rows, <c>--batch</c> rows of <c>--seq</c> tokens per GPU, global batch =
/// batch × world size. Run once with one process and <c>--batch 16</c>, once under <c>peft-run --nproc-per-node 2</c>
/// with <c>--batch 8</c>: same rows, same order, so the loss curves must agree. Rank 0 prints the losses, the loop's
/// wall time and tokens/s (steps after <c>--warmup</c>). Env: <c>DP_STEPS</c> (20); <c>DP_KILL_RANK</c> /
/// <c>DP_KILL_STEP</c>: that rank SIGKILLs itself after that step (the kill check).
/// </summary>
public sealed class DataParallelLoraBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "dp_lora";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        var env = DistributedBench.Env;
        var parallel = DataParallel.FromEnvironment();
        int steps = DistributedBench.EnvInt("DP_STEPS", 20), batch = HfMirror.MirrorSetup.Batch(options), seq = HfMirror.MirrorSetup.Seq(options);
        var device = options.Device == "cuda" ? DistributedBench.CudaDevice(env) : CPU;
        var o = options with { Device = "cpu", Dtype = "fp32" };
        var model = HfMirror.MirrorSetup.BuildModel(o);   // same init on every rank (seeded, on the CPU), then moved
        model.to(device);
        using var pm = PeftModel.GetPeftModel(model, HfMirror.MirrorSetup.Lora());
        int globalBatch = batch * parallel.WorldSize;
        var rows = DistributedBench.RandomRows(globalBatch * steps, seq, HfMirror.MirrorSetup.Vocab(options), options.Seed + 1);
        string outDir = Path.Combine(Path.GetTempPath(), $"peft-dp-{Environment.ProcessId}");
        var args = new TrainingArguments
        {
            OutputDir = outDir, MaxSteps = steps, PerDeviceTrainBatchSize = batch, LearningRate = 2e-4, WeightDecay = 0.01,
            LoggingSteps = 1, SaveStrategy = IntervalStrategy.No, DisableTqdm = true, Bf16 = options.Dtype == "bf16",
            Device = device.ToString(), Seed = options.Seed,
        };
        var clock = new Clock(device, env.Rank, DistributedBench.EnvInt("DP_KILL_RANK", -1), DistributedBench.EnvInt("DP_KILL_STEP", -1));
        var trainer = new Trainer(pm, args, trainDataset: rows, dataCollator: new DefaultDataCollator(), callbacks: [clock], dataParallel: parallel);
        var total = Stopwatch.StartNew();
        trainer.Train();
        double loop = total.Elapsed.TotalSeconds;
        if (!parallel.IsMain) return;
        int warm = Math.Min(options.Warmup, steps - 1);
        double steady = clock.Times.Skip(warm).Sum();
        int timedSteps = clock.Times.Count - warm;
        report(new Dictionary<string, object?>
        {
            ["case"] = "dp_lora", ["model"] = options.Model, ["world"] = parallel.WorldSize, ["per_device_batch"] = batch, ["global_batch"] = globalBatch,
            ["seq"] = seq, ["dtype"] = options.Dtype, ["steps"] = steps, ["train_loop_s"] = Math.Round(loop, 3),
            ["steady_s_per_step"] = Math.Round(steady / timedSteps, 5),
            ["tok_per_s"] = Math.Round(globalBatch * (double)seq * timedSteps / steady, 1),
            ["losses"] = trainer.State.LogHistory.Where(e => e.ContainsKey("grad_norm")).Select(e => Math.Round(e["loss"], 6)).ToArray(),
            ["grad_norms"] = trainer.State.LogHistory.Where(e => e.ContainsKey("grad_norm")).Select(e => Math.Round(e["grad_norm"], 6)).ToArray(),
        });
    }

    private sealed class Clock(Device device, int rank, int killRank, int killStep) : ITrainerCallback
    {
        private readonly Stopwatch _sw = Stopwatch.StartNew();

        public List<double> Times { get; } = [];

        public void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control)
        {
            if (device.type == DeviceType.CUDA) cuda.synchronize();
            Times.Add(_sw.Elapsed.TotalSeconds);
            _sw.Restart();
            if (rank == killRank && state.GlobalStep == killStep)
            {
                Console.Error.WriteLine($"[dp_lora] rank {rank}: killing myself (SIGKILL) after step {killStep}");
                Console.Error.Flush();
                Process.GetCurrentProcess().Kill();
            }
        }
    }
}
