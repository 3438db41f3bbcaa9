using System.Collections;
using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Datasets;
using Peft.Testing;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Training;

/// <summary>
/// Replays a <c>shared/fixtures/hf/training/&lt;case&gt;</c> trajectory with the Trainer: start from
/// <c>initial_adapter/</c>, the 12 rows of <c>batches.safetensors</c> in order (step k sees batch k % 3), the
/// optimizer / schedule / clipping of <c>trajectory.json</c>, and return what the run logged and saved.
/// </summary>
internal static class TrajectoryReplay
{
    public sealed record Result(JsonObject Trajectory, IReadOnlyList<IReadOnlyDictionary<string, double>> StepLogs, string SavedAdapter, string FinalAdapter);

    public static JsonObject Trajectory(string name) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Training(name), "trajectory.json")))!.AsObject();

    public static PeftModel LoadInitial(string name)
    {
        var traj = Trajectory(name);
        string baseDir = Path.Combine(Fixtures.Hf, traj["base_model"]!.GetValue<string>());
        string initial = Path.Combine(Fixtures.Training(name), "initial_adapter");
        PreTrainedModel model = PeftConfig.FromPretrained(initial).TaskType switch
        {
            TaskType.SeqCls => AutoModelForSequenceClassification.FromPretrained(baseDir),
            TaskType.TokenCls => AutoModelForTokenClassification.FromPretrained(baseDir),
            _ => AutoModelForCausalLM.FromPretrained(baseDir),
        };
        return PeftModel.FromPretrained(model, initial, isTrainable: true);
    }

    /// <summary>The fixture's three batches as a 12-row dataset (batch0 rows, then batch1, then batch2).</summary>
    public static Dataset Rows(string name)
    {
        using var file = SafetensorsFile.Open(Path.Combine(Fixtures.Training(name), "batches.safetensors"));
        var columns = new Dictionary<string, IList>(StringComparer.Ordinal);
        foreach (var key in new[] { "input_ids", "attention_mask", "labels" })
        {
            IList list = null!;
            for (int b = 0; b < 3; b++)
            {
                using var t = file.GetTensor($"batch{b}_{key}");
                long rows = t.shape[0];
                if (t.dim() == 1)
                {
                    list ??= new List<long>();
                    foreach (var v in t.data<long>()) list.Add(v);
                }
                else
                {
                    list ??= new List<long[]>();
                    var data = t.data<long>().ToArray();
                    long len = t.shape[1];
                    for (long r = 0; r < rows; r++) list.Add(data.AsSpan((int)(r * len), (int)len).ToArray());
                }
            }
            columns[key] = list;
        }
        return Dataset.FromDict(columns);
    }

    public static TrainingArguments Args(string name, string outputDir)
    {
        var traj = Trajectory(name);
        var opt = traj["optimizer"]!;
        var betas = opt["betas"]!.AsArray();
        var sched = traj["scheduler"]!;
        Assert.Equal("linear", sched["type"]!.GetValue<string>());
        return new TrainingArguments
        {
            OutputDir = outputDir,
            MaxSteps = traj["steps"]!.GetValue<int>(),
            PerDeviceTrainBatchSize = 4,
            DataLoaderShuffle = false,
            LearningRate = opt["lr"]!.GetValue<double>(),
            AdamBeta1 = betas[0]!.GetValue<double>(),
            AdamBeta2 = betas[1]!.GetValue<double>(),
            AdamEpsilon = opt["eps"]!.GetValue<double>(),
            WeightDecay = opt["weight_decay"]!.GetValue<double>(),
            LrSchedulerType = SchedulerType.Linear,
            WarmupSteps = sched["num_warmup_steps"]!.GetValue<int>(),
            MaxGradNorm = traj["max_grad_norm"]!.GetValue<double>(),
            LoggingSteps = 1,
            SaveStrategy = IntervalStrategy.No,
            DisableTqdm = true,
        };
    }

    /// <param name="graphForm">Steps run the CUDA-graph step's body eagerly (<see cref="Trainer.GraphFormWithoutCapture"/>).</param>
    public static Result Run(string name, string outputDir, bool graphForm = false)
    {
        var traj = Trajectory(name);
        using var pm = LoadInitial(name);
        var trainer = new Trainer(pm, Args(name, outputDir), trainDataset: Rows(name), dataCollator: new DefaultDataCollator()) { GraphFormWithoutCapture = graphForm };
        trainer.Train();
        string saved = Path.Combine(outputDir, "final");
        trainer.SaveModel(saved);
        var steps = trainer.State.LogHistory.Where(e => e.ContainsKey("loss") && e.ContainsKey("grad_norm")).ToList();
        return new Result(traj, steps, saved, Path.Combine(Fixtures.Training(name), "final_adapter"));
    }
}
