using System.Collections;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Datasets;
using Peft.Transformers;
using static TorchSharp.torch;

namespace Peft.Benchmarks;

/// <summary>
/// Replays the <c>training/opt-lora</c> reference trajectory with the Trainer on the chosen device, in float32 and in
/// bf16 (float32 master weights), and reports the largest differences from the reference (losses, pre-clip gradient
/// norms, final adapter) with the median step time. On CUDA this is the GPU acceptance check: fp32 losses within
/// 1e-3 of the CPU reference. Input from the environment (the bench never reads ../shared itself):
/// <c>PEFT_FIXTURES_HF</c> = the <c>shared/fixtures/hf</c> folder.
/// </summary>
public sealed class TrainingBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "training";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        string? hf = Environment.GetEnvironmentVariable("PEFT_FIXTURES_HF");
        if (hf is null)
        {
            report(new Dictionary<string, object?> { ["skipped"] = "set PEFT_FIXTURES_HF to shared/fixtures/hf" });
            return;
        }
        foreach (bool bf16 in new[] { false, true }) report(Replay(hf, "opt-lora", options.Device, bf16));
    }

    private static Dictionary<string, object?> Replay(string hf, string name, string device, bool bf16)
    {
        string caseDir = Path.Combine(hf, "training", name);
        var traj = JsonNode.Parse(File.ReadAllText(Path.Combine(caseDir, "trajectory.json")))!;
        var opt = traj["optimizer"]!;
        var model = AutoModelForCausalLM.FromPretrained(Path.Combine(hf, traj["base_model"]!.GetValue<string>()));
        using var pm = PeftModel.FromPretrained(model, Path.Combine(caseDir, "initial_adapter"), isTrainable: true);
        string outDir = Path.Combine(Path.GetTempPath(), "peft-bench-training-" + Guid.NewGuid().ToString("N"));
        var args = new TrainingArguments
        {
            OutputDir = outDir, MaxSteps = traj["steps"]!.GetValue<int>(), PerDeviceTrainBatchSize = 4, DataLoaderShuffle = false,
            LearningRate = opt["lr"]!.GetValue<double>(), AdamBeta1 = opt["betas"]![0]!.GetValue<double>(), AdamBeta2 = opt["betas"]![1]!.GetValue<double>(),
            AdamEpsilon = opt["eps"]!.GetValue<double>(), WeightDecay = opt["weight_decay"]!.GetValue<double>(),
            WarmupSteps = traj["scheduler"]!["num_warmup_steps"]!.GetValue<int>(), MaxGradNorm = traj["max_grad_norm"]!.GetValue<double>(),
            LoggingSteps = 1, SaveStrategy = IntervalStrategy.No, DisableTqdm = true, Device = device, Bf16 = bf16,
        };
        var stepTimes = new List<double>();
        var clock = new StepClock(stepTimes, device);
        var trainer = new Trainer(pm, args, trainDataset: Rows(Path.Combine(caseDir, "batches.safetensors")), dataCollator: new DefaultDataCollator(), callbacks: [clock]);
        trainer.Train();
        var logs = trainer.State.LogHistory.Where(e => e.ContainsKey("grad_norm")).ToList();
        var losses = traj["loss_per_step"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
        var norms = traj["grad_norm_before_clip_per_step"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
        double lossDiff = logs.Select((e, i) => Math.Abs(e["loss"] - losses[i])).Max();
        double normDiff = logs.Select((e, i) => Math.Abs(e["grad_norm"] - norms[i]) / norms[i]).Max();
        string saved = Path.Combine(outDir, "final");
        trainer.SaveModel(saved);
        double weightDiff = MaxDiff(Path.Combine(caseDir, "final_adapter", "adapter_model.safetensors"), Path.Combine(saved, "adapter_model.safetensors"));
        Directory.Delete(outDir, recursive: true);
        stepTimes.Sort();
        return new Dictionary<string, object?>
        {
            ["case"] = name, ["precision"] = bf16 ? "bf16" : "fp32", ["steps"] = logs.Count,
            ["max_abs_loss_diff"] = lossDiff, ["max_rel_grad_norm_diff"] = normDiff, ["max_abs_adapter_diff"] = weightDiff,
            ["loss_within_1e-3"] = lossDiff < 1e-3, ["median_step_s"] = stepTimes.Count > 0 ? stepTimes[stepTimes.Count / 2] : null,
            ["losses"] = logs.Select(e => e["loss"]).ToArray(),
        };
    }

    private sealed class StepClock(List<double> times, string device) : ITrainerCallback
    {
        private readonly Stopwatch _sw = Stopwatch.StartNew();

        public void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control)
        {
            if (device == "cuda") cuda.synchronize();
            times.Add(_sw.Elapsed.TotalSeconds);
            _sw.Restart();
        }
    }

    private static double MaxDiff(string expectedPath, string actualPath)
    {
        using var e = SafetensorsFile.Open(expectedPath);
        using var a = SafetensorsFile.Open(actualPath);
        double max = 0;
        foreach (var key in e.Keys)
        {
            using var scope = NewDisposeScope();
            max = Math.Max(max, (e.GetTensor(key, ScalarType.Float32) - a.GetTensor(key, ScalarType.Float32)).abs().max().item<float>());
        }
        return max;
    }

    // The fixture's three batches as 12 rows (step k sees batch k % 3 with batch size 4 and no shuffling).
    private static Dataset Rows(string path)
    {
        using var file = SafetensorsFile.Open(path);
        var columns = new Dictionary<string, IList>(StringComparer.Ordinal);
        foreach (var key in new[] { "input_ids", "attention_mask", "labels" })
        {
            var list = new List<long[]>();
            for (int b = 0; b < 3; b++)
            {
                using var t = file.GetTensor($"batch{b}_{key}");
                var data = t.data<long>().ToArray();
                int len = (int)t.shape[1];
                for (int r = 0; r < t.shape[0]; r++) list.Add(data.AsSpan(r * len, len).ToArray());
            }
            columns[key] = list;
        }
        return Dataset.FromDict(columns);
    }
}
