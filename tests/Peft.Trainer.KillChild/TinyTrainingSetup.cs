using System.Collections;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Datasets;
using Peft.Testing;
using Peft.Transformers;
using static TorchSharp.torch;

namespace TrainerKillChild;

/// <summary>
/// A small, fully deterministic training run that exercises everything exact resume depends on: opt-tiny with LoRA
/// (dropout 0.1, so torch's generator matters), the 12 rows of the opt-lora fixture batches shuffled each epoch,
/// AdamW with warm-up, and a checkpoint after every step (so kills land in saves too).
/// </summary>
public static class TinyTrainingSetup
{
    /// <summary>opt-tiny + LoRA q_proj/v_proj r=4, dropout 0.1, initialised from a fixed seed.</summary>
    public static PeftModel Model()
    {
        var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny"));
        manual_seed(1234);
        return PeftModel.GetPeftModel(model, new LoraConfig { R = 4, LoraAlpha = 8, LoraDropout = 0.1, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM });
    }

    /// <summary>The 12 rows of <c>training/opt-lora/batches.safetensors</c>.</summary>
    public static Dataset Rows()
    {
        using var file = SafetensorsFile.Open(Path.Combine(Fixtures.Training("opt-lora"), "batches.safetensors"));
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

    /// <summary>The run's arguments: shuffled data, warm-up, weight decay, a checkpoint every step, two kept.</summary>
    public static TrainingArguments Args(string outputDir, int maxSteps) => new()
    {
        OutputDir = outputDir,
        MaxSteps = maxSteps,
        PerDeviceTrainBatchSize = 4,
        LearningRate = 5e-3,
        WeightDecay = 0.01,
        WarmupSteps = 2,
        LoggingSteps = 1,
        SaveStrategy = IntervalStrategy.Steps,
        SaveSteps = 1,
        SaveTotalLimit = 2,
        Seed = 7,
        DisableTqdm = true,
    };
}
