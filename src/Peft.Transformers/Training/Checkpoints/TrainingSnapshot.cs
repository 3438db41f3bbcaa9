using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.IO;
using Peft.Core.Safetensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// What a checkpoint holds beyond the HF files, and how it goes back into a live run: the trainable parameters by
/// their <c>named_parameters()</c> names (<c>trainable.safetensors</c>), the optimizer (<c>optimizer.*</c>), the
/// schedule position (<c>scheduler.json</c>), torch's CPU generator and a random collator's generator
/// (<c>rng_state.safetensors</c>), and the loop position with the loss accumulated since the last log
/// (<c>rng_state.json</c>). All safetensors or JSON; nothing is pickled.
/// </summary>
internal static class TrainingSnapshot
{
    public const string TrainableFile = "trainable.safetensors";
    public const string RngFile = "rng_state.safetensors";
    public const string LoopFile = "rng_state.json";
    public const string SchedulerFile = "scheduler.json";

    /// <summary>The loop's position and accumulators.</summary>
    public sealed record Loop(int Epoch, int BatchInEpoch, double LossSinceLog, int LastLoggedStep, int DataSeed, double TotalLoss);

    public static void Save(string dir, IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Param)> trainableParams, TrainerOptimizer optimizer, LrSchedule schedule, IDataCollator collator, Loop loop)
    {
        using (var scope = NewDisposeScope())
        {
            var trainable = trainableParams.ToDictionary(p => p.Name, p => (Tensor)p.Param.detach().cpu().contiguous(), StringComparer.Ordinal);
            SafetensorsIO.SaveFile(trainable, Path.Combine(dir, TrainableFile));
            var rng = new Dictionary<string, Tensor>(StringComparer.Ordinal) { ["torch_cpu"] = torch.random.get_rng_state() };
            if (collator is IRandomCollator rc) rng["collator"] = rc.GetRngState();
            SafetensorsIO.SaveFile(rng, Path.Combine(dir, RngFile));
        }
        optimizer.Save(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, SchedulerFile), new JsonObject
        {
            ["last_epoch"] = schedule.StepCount, ["base_lrs"] = new JsonArray(schedule.BaseLr), ["_last_lr"] = new JsonArray(schedule.LastLr),
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        AtomicFile.WriteAllText(Path.Combine(dir, LoopFile), JsonSerializer.Serialize(loop, new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Restores everything <see cref="Save"/> wrote; throws naming the file and key on a mismatch.</summary>
    public static Loop Load(string dir, IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Param)> trainableParams, TrainerOptimizer optimizer, LrSchedule schedule, IDataCollator collator)
    {
        LoadWeights(Path.Combine(dir, TrainableFile), trainableParams);
        optimizer.Load(dir);
        var sched = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, SchedulerFile)))!;
        schedule.Restore(sched["last_epoch"]!.GetValue<int>());
        using (var file = SafetensorsFile.Open(Path.Combine(dir, RngFile)))
        {
            using var cpuState = file.GetTensor("torch_cpu");
            torch.random.set_rng_state(cpuState);
            if (collator is IRandomCollator rc)
            {
                if (!file.Contains("collator")) throw new InvalidDataException($"{file.Path}: no 'collator' generator state, but the collator draws random numbers");
                using var c = file.GetTensor("collator");
                rc.SetRngState(c);
            }
        }
        string loopPath = Path.Combine(dir, LoopFile);
        return JsonSerializer.Deserialize<Loop>(File.ReadAllText(loopPath)) ?? throw new InvalidDataException($"{loopPath}: null");
    }

    /// <summary>Copies <c>trainable.safetensors</c> into the parameters by name; throws naming the key on a missing tensor or shape mismatch.</summary>
    public static void LoadWeights(string trainablePath, IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Param)> trainableParams)
    {
        using var file = SafetensorsFile.Open(trainablePath);
        using var _ = no_grad();
        foreach (var (name, p) in trainableParams)
        {
            if (!file.Contains(name)) throw new InvalidDataException($"{trainablePath}: no tensor for trainable parameter '{name}'");
            using var t = file.GetTensor(name, p.dtype, p.device);
            if (!t.shape.SequenceEqual(p.shape))
                throw new InvalidDataException($"{trainablePath}: '{name}' has shape [{string.Join(", ", t.shape)}], the model's is [{string.Join(", ", p.shape)}]");
            p.copy_(t);
        }
    }

    /// <summary>Writes the user-facing model files (HF <c>save_model</c>): a PEFT model's adapter only, else the model.</summary>
    public static void SaveModelFiles(nn.Module model, string dir)
    {
        Directory.CreateDirectory(dir);
        switch (model)
        {
            case PeftModel pm: pm.SavePretrained(dir); break;
            case IPreTrainedModel pre: pre.SavePretrained(dir); break;
            default:
                using (var scope = NewDisposeScope())
                {
                    var sd = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().contiguous(), StringComparer.Ordinal);
                    SafetensorsIO.SaveFile(sd, Path.Combine(dir, "model.safetensors"), new Dictionary<string, string> { ["format"] = "pt" });
                }
                break;
        }
    }
}
