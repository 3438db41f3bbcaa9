using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.IO;
using Peft.Core.Safetensors;
using TorchSharp;
using static TorchSharp.torch;
using Peft.Transformers.Optimization;

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

    // A diverged run's loss sums are NaN / infinite: written as "NaN" / "Infinity" (as trainer_state.json's log_history), not refused.
    private static readonly JsonSerializerOptions LoopJson = new() { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>The loop's position and accumulators.</summary>
    public sealed record Loop(int Epoch, int BatchInEpoch, double LossSinceLog, int LastLoggedStep, int DataSeed, double TotalLoss, int GlobalBatchSize = 0);

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
        AtomicFile.WriteAllText(Path.Combine(dir, LoopFile), JsonSerializer.Serialize(loop, LoopJson));
    }

    /// <summary>
    /// Restores everything <see cref="Save"/> wrote. Every file is read and checked before anything is applied, so a
    /// damaged checkpoint changes neither the model, the optimizer, the schedule nor the generators: it fails with an
    /// <see cref="InvalidDataException"/> naming the file and key (a missing or misshapen tensor, non-finite values, a
    /// generator state of the wrong size, a schedule or loop position that disagrees with <paramref name="globalStep"/>,
    /// learning rates in <c>scheduler.json</c> that are not the schedule's).
    /// </summary>
    public static Loop Load(string dir, int globalStep, int dataSeed, IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Param)> trainableParams, TrainerOptimizer optimizer, LrSchedule schedule, IDataCollator collator)
    {
        using var scope = NewDisposeScope();
        var weights = ReadWeights(Path.Combine(dir, TrainableFile), trainableParams);
        int schedulerStep = ReadScheduler(Path.Combine(dir, SchedulerFile), globalStep, schedule);
        var (cpuState, collatorState) = ReadRng(Path.Combine(dir, RngFile), collator);
        var loop = ReadLoop(Path.Combine(dir, LoopFile), globalStep, dataSeed);
        optimizer.Load(dir); // checks both optimizer files before replacing its state
        using (no_grad())
        {
            foreach (var (p, t) in weights) p.copy_(t);
        }
        schedule.Restore(schedulerStep);
        torch.random.set_rng_state(cpuState);
        if (collatorState is not null) ((IRandomCollator)collator).SetRngState(collatorState);
        return loop;
    }

    /// <summary>Copies <c>trainable.safetensors</c> into the parameters by name (all checked first); throws naming the file and key.</summary>
    public static void LoadWeights(string trainablePath, IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Param)> trainableParams)
    {
        using var scope = NewDisposeScope();
        var weights = ReadWeights(trainablePath, trainableParams);
        using var _ = no_grad();
        foreach (var (p, t) in weights) p.copy_(t);
    }

    private static List<(TorchSharp.Modules.Parameter Param, Tensor Value)> ReadWeights(string path, IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Param)> trainableParams)
    {
        using var file = SafetensorsFile.Open(path);
        var result = new List<(TorchSharp.Modules.Parameter, Tensor)>();
        foreach (var (name, p) in trainableParams)
        {
            if (!file.Contains(name)) throw new InvalidDataException($"{path}: no tensor for trainable parameter '{name}'");
            var t = file.GetTensor(name, p.dtype, p.device);
            if (!t.shape.SequenceEqual(p.shape))
                throw new InvalidDataException($"{path}: '{name}' has shape [{string.Join(", ", t.shape)}], the model's is [{string.Join(", ", p.shape)}]");
            using (var finite = isfinite(t).all())
            {
                if (!finite.item<bool>()) throw new InvalidDataException($"{path}: '{name}' holds NaN or infinite values");
            }
            result.Add((p, t));
        }
        return result;
    }

    /// <summary>
    /// The schedule position of <c>scheduler.json</c> (torch <c>LambdaLR.state_dict()</c>: <c>last_epoch</c>,
    /// <c>base_lrs</c>, <c>_last_lr</c>). torch's <c>load_state_dict</c> restores all three, but the lr of every later
    /// step is recomputed as <c>base_lrs · lambda(last_epoch)</c>, so the stored <c>_last_lr</c> is only a record;
    /// here too the next step's lr comes from the schedule (<see cref="LrSchedule.LastLr"/>), and the file must agree
    /// with it: one finite, non-negative <c>base_lrs</c> entry equal to this run's learning rate (transformers would silently
    /// continue with the checkpoint's; a run resumed with another learning rate is refused instead) and one finite,
    /// non-negative <c>_last_lr</c> entry equal to the schedule's lr at <c>last_epoch</c>. Anything else throws
    /// <see cref="InvalidDataException"/> naming the file, the key and the value, before anything is applied.
    /// </summary>
    private static int ReadScheduler(string path, int globalStep, LrSchedule schedule)
    {
        var node = ReaderErrors.ParseJson(File.ReadAllText(path), path);
        int step = ReaderErrors.Guard(path, () => node?["last_epoch"]?.GetValue<int>() ?? throw new InvalidDataException($"{path}: no 'last_epoch'"));
        if (step != globalStep) throw new InvalidDataException($"{path}: last_epoch is {step}, but trainer_state.json says global_step {globalStep}");
        double baseLr = ReadLr(path, node, "base_lrs");
        if (!SameLr(baseLr, schedule.BaseLr))
            throw new InvalidDataException($"{path}: 'base_lrs'[0] is {Show(baseLr)}, this run's learning rate is {Show(schedule.BaseLr)} (resuming with another learning rate is not supported)");
        double lastLr = ReadLr(path, node, "_last_lr");
        double expected = schedule.LrAt(step);
        if (!SameLr(lastLr, expected))
            throw new InvalidDataException($"{path}: '_last_lr'[0] is {Show(lastLr)}, but the schedule's lr at last_epoch {step} is {Show(expected)}");
        return step;
    }

    // One entry per schedule (this Trainer's optimizer steps every group with one lr): finite and not negative.
    private static double ReadLr(string path, JsonNode? node, string key)
    {
        var list = node?[key] as JsonArray ?? throw new InvalidDataException($"{path}: '{key}' is missing or not a list");
        if (list.Count != 1) throw new InvalidDataException($"{path}: '{key}' has {list.Count} entries; the schedule has 1");
        double lr = ReaderErrors.Guard(path, () => list[0]?.GetValue<double>() ?? throw new InvalidDataException($"{path}: '{key}'[0] is null"));
        if (!double.IsFinite(lr) || lr < 0) throw new InvalidDataException($"{path}: '{key}'[0] is {Show(lr)}; a learning rate is finite and not negative");
        return lr;
    }

    // The file holds what LrSchedule computed, written round-trip: equal up to rounding of a later formula change.
    private static bool SameLr(double a, double b) => Math.Abs(a - b) <= 1e-9 * Math.Max(Math.Abs(a), Math.Abs(b));

    private static string Show(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The generator states, checked against the live generators' dtype and size (torch refuses others natively).</summary>
    private static (Tensor Cpu, Tensor? Collator) ReadRng(string path, IDataCollator collator)
    {
        using var file = SafetensorsFile.Open(path);
        using var liveCpu = torch.random.get_rng_state();
        var cpu = ReadState(file, path, "torch_cpu", liveCpu);
        Tensor? col = null;
        if (collator is IRandomCollator rc)
        {
            if (!file.Contains("collator")) throw new InvalidDataException($"{path}: no 'collator' generator state, but the collator draws random numbers");
            using var live = rc.GetRngState();
            col = ReadState(file, path, "collator", live);
        }
        return (cpu, col);
    }

    private static Tensor ReadState(SafetensorsFile file, string path, string key, Tensor like)
    {
        if (!file.Contains(key)) throw new InvalidDataException($"{path}: no '{key}' generator state");
        var t = file.GetTensor(key);
        if (t.dtype != like.dtype || !t.shape.SequenceEqual(like.shape))
            throw new InvalidDataException($"{path}: '{key}' is {t.dtype} [{string.Join(", ", t.shape)}]; a generator state is {like.dtype} [{string.Join(", ", like.shape)}]");
        if (t.dtype == ScalarType.Byte && t.numel() is CpuGeneratorStateBytes or CpuGeneratorLegacyStateBytes) CheckMt19937(path, key, t);
        return t;
    }

    // torch's CPUGeneratorImplState (CPUGeneratorImplStateLegacy + the float normal sample) and the legacy struct alone.
    private const long CpuGeneratorStateBytes = 5056, CpuGeneratorLegacyStateBytes = 5048;
    private const int MersenneStateN = 624;

    /// <summary>
    /// torch's <c>CPUGeneratorImpl::set_state</c> refuses an mt19937 state that is not seeded or whose <c>left</c> /
    /// <c>next</c> fall outside the state array ("Invalid mt19937 state") with a native error that aborts the process
    /// through TorchSharp; the same check here names the file instead. Layout of the legacy struct: the initial seed
    /// (u64), left (i32), seeded (i32), next (u64), then the 624-word state.
    /// </summary>
    private static void CheckMt19937(string path, string key, Tensor state)
    {
        var bytes = state.contiguous().data<byte>().ToArray();
        int left = BitConverter.ToInt32(bytes, 8), seeded = BitConverter.ToInt32(bytes, 12);
        uint next = (uint)BitConverter.ToUInt64(bytes, 16);
        if (seeded == 0 || left <= 0 || left > MersenneStateN || next > MersenneStateN)
            throw new InvalidDataException($"{path}: '{key}' is not a valid mt19937 generator state (seeded {seeded}, left {left}, next {next})");
    }

    private static Loop ReadLoop(string path, int globalStep, int dataSeed)
    {
        var node = ReaderErrors.ParseJson(File.ReadAllText(path), path);
        var loop = ReaderErrors.Guard(path, () => node.Deserialize<Loop>(LoopJson) ?? throw new InvalidDataException($"{path}: null"));
        if (loop.Epoch < 0 || loop.Epoch > globalStep + 1 || loop.BatchInEpoch < 0 || loop.LastLoggedStep < 0 || loop.LastLoggedStep > globalStep)
            throw new InvalidDataException($"{path}: loop position {loop} does not fit global_step {globalStep}");
        if (loop.DataSeed != dataSeed) throw new InvalidDataException($"{path}: the checkpoint used data seed {loop.DataSeed}; this run uses {dataSeed}");
        return loop;
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
