using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Peft.Core.Safetensors;
using Peft.Testing;
using TrainerKillChild;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Training;

/// <summary>
/// A checkpoint whose files were changed and whose manifest was re-sealed to match (so the SHA-256 check passes) is
/// still refused when a file holds values no run writes: the resume fails with an <see cref="InvalidDataException"/>
/// naming the file, and the model's weights are left as they were (everything is checked before anything is applied).
/// The fuzz harness (tests/Peft.Fuzz, checkpoint-* targets) throws random mutations at the same files.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public class CheckpointValidationTests
{
    private const int Steps = 4;

    private static void EditJson(string path, Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(node);
        File.WriteAllText(path, node.ToJsonString());
    }

    private static void EditTensors(string path, Action<Dictionary<string, Tensor>> edit)
    {
        using var scope = NewDisposeScope();
        Dictionary<string, Tensor> tensors;
        using (var f = SafetensorsFile.Open(path)) tensors = f.Keys.ToDictionary(k => k, k => f.GetTensor(k), StringComparer.Ordinal);
        edit(tensors);
        SafetensorsIO.SaveFile(tensors, path);
    }

    /// <summary>Re-seals the manifest the way the Trainer writes it, so only the readers' checks can catch the edit.</summary>
    private static void Reseal(string dir)
    {
        var manifest = new JsonObject();
        foreach (var f in Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var rel = Path.GetRelativePath(dir, f).Replace('\\', '/');
            if (rel == CheckpointFolder.ManifestName) continue;
            manifest[rel] = new JsonObject { ["size"] = new FileInfo(f).Length, ["sha256"] = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f))) };
        }
        File.WriteAllText(Path.Combine(dir, CheckpointFolder.ManifestName), manifest.ToJsonString());
    }

    public static TheoryData<string, string> Cases() => new()
    {
        { "trainer_state.json", "global_step 99 outside" },
        { "trainer_state.json", "best_model_checkpoint" },
        { "scheduler.json", "last_epoch is 3" },
        { "scheduler.json", "no 'last_epoch'" },
        { "scheduler.json", "'_last_lr' has 2 entries" },
        { "scheduler.json", "'_last_lr'[0] is -1;" },
        { "scheduler.json", "'_last_lr'[0] is 1000000000000, but the schedule's lr at last_epoch 2 is" },
        { "scheduler.json", "'base_lrs'[0] is 0.5, this run's learning rate is" },
        { "rng_state.json", "does not fit global_step" },
        { "rng_state.json", "data seed" },
        { "optimizer.json", "has lr -1" },
        { "optimizer.json", "settings" },
        { "optimizer.safetensors", "NaN or infinite" },
        { "optimizer.safetensors", "AdamW keeps" },
        { "optimizer.safetensors", "is Float32 [3, 5], expected" },
        { "trainable.safetensors", "NaN or infinite" },
        { "rng_state.safetensors", "a generator state is" },
        { "rng_state.safetensors", "not a valid mt19937 generator state" },
    };

    private static void Damage(string dir, string file, string expected)
    {
        string path = Path.Combine(dir, file);
        switch (file, expected)
        {
            case ("trainer_state.json", "global_step 99 outside"): EditJson(path, o => o["global_step"] = 99); break;
            case ("trainer_state.json", _): EditJson(path, o => o["best_model_checkpoint"] = "../../somewhere/else"); break;
            case ("scheduler.json", "last_epoch is 3"): EditJson(path, o => o["last_epoch"] = 3); break;
            case ("scheduler.json", "no 'last_epoch'"): EditJson(path, o => o.Remove("last_epoch")); break;
            // the fuzz's poisoned file (tests/Peft.Fuzz/Regressions/checkpoint-scheduler): one lr per group, finite, >= 0, the schedule's
            case ("scheduler.json", "'_last_lr' has 2 entries"): EditJson(path, o => o["_last_lr"] = new JsonArray(1e12, -1.0)); break;
            case ("scheduler.json", "'_last_lr'[0] is -1;"): EditJson(path, o => o["_last_lr"] = new JsonArray(-1.0)); break;
            case ("scheduler.json", "'base_lrs'[0] is 0.5, this run's learning rate is"): EditJson(path, o => o["base_lrs"] = new JsonArray(0.5)); break;
            case ("scheduler.json", _): EditJson(path, o => o["_last_lr"] = new JsonArray(1e12)); break;
            case ("rng_state.json", "data seed"): EditJson(path, o => o["DataSeed"] = 12345); break;
            case ("rng_state.json", _): EditJson(path, o => o["LastLoggedStep"] = 1000); break;
            case ("optimizer.json", "has lr -1"): EditJson(path, o => o["param_groups"]![0]!["lr"] = -1.0); break;
            case ("optimizer.json", _): EditJson(path, o => o["settings"]!["eps"] = 0.5); break;
            case ("optimizer.safetensors", "NaN or infinite"):
                EditTensors(path, t => t["state.0.exp_avg"] = full_like(t["state.0.exp_avg"], double.NaN));
                break;
            case ("optimizer.safetensors", "AdamW keeps"): EditTensors(path, t => t.Remove("state.1.exp_avg_sq")); break;
            case ("optimizer.safetensors", _): EditTensors(path, t => t["state.0.exp_avg"] = zeros(3, 5)); break;
            case ("trainable.safetensors", _):
                EditTensors(path, t =>
                {
                    var k = t.Keys.First();
                    t[k] = t[k].clone().fill_(float.PositiveInfinity);
                });
                break;
            case ("rng_state.safetensors", "a generator state is"): EditTensors(path, t => t["torch_cpu"] = t["torch_cpu"].narrow(0, 0, 100)); break;
            default:
                // mt19937 'left' (bytes 8..11) = 0: torch's set_state would abort the process natively
                EditTensors(path, t =>
                {
                    var bytes = t["torch_cpu"].data<byte>().ToArray();
                    Array.Clear(bytes, 8, 4);
                    t["torch_cpu"] = tensor(bytes);
                });
                break;
        }
        Reseal(dir);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Resealed_checkpoint_with_impossible_values_is_refused_naming_the_file_and_changes_nothing(string file, string expected)
    {
        using var dir = new TempDir();
        var args = TinyTrainingSetup.Args(dir.Path, Steps) with { SaveTotalLimit = null };
        using (var first = TinyTrainingSetup.Model())
        {
            new Trainer(first, args, trainDataset: TinyTrainingSetup.Rows(), dataCollator: new DefaultDataCollator(),
                callbacks: [new StopAtStep(2)]).Train();
        }
        string checkpoint = Path.Combine(dir.Path, "checkpoint-2");
        Damage(checkpoint, file, expected);

        using var model = TinyTrainingSetup.Model();
        var before = ResumeTests.Weights(model);
        var trainer = new Trainer(model, args, trainDataset: TinyTrainingSetup.Rows(), dataCollator: new DefaultDataCollator());
        var e = Assert.Throws<InvalidDataException>(() => trainer.Train(checkpoint));
        Assert.Contains(file, e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        var after = ResumeTests.Weights(model);
        foreach (var (name, w) in before) Assert.True(w.SequenceEqual(after[name]), $"{name} changed although the resume was refused");
        Assert.Equal(0, trainer.State.GlobalStep);
    }

    [Fact]
    public void Undamaged_resealed_checkpoint_still_resumes()
    {
        using var dir = new TempDir();
        var args = TinyTrainingSetup.Args(dir.Path, Steps) with { SaveTotalLimit = null };
        using (var first = TinyTrainingSetup.Model())
        {
            new Trainer(first, args, trainDataset: TinyTrainingSetup.Rows(), dataCollator: new DefaultDataCollator(),
                callbacks: [new StopAtStep(2)]).Train();
        }
        string checkpoint = Path.Combine(dir.Path, "checkpoint-2");
        Reseal(checkpoint);
        using var model = TinyTrainingSetup.Model();
        var trainer = new Trainer(model, args, trainDataset: TinyTrainingSetup.Rows(), dataCollator: new DefaultDataCollator());
        Assert.Equal(Steps, trainer.Train(checkpoint).GlobalStep);
    }

    [Fact]
    public void Manifest_listing_a_file_outside_the_folder_is_refused()
    {
        using var dir = new TempDir();
        var args = TinyTrainingSetup.Args(dir.Path, Steps) with { SaveTotalLimit = null };
        using (var first = TinyTrainingSetup.Model())
        {
            new Trainer(first, args, trainDataset: TinyTrainingSetup.Rows(), dataCollator: new DefaultDataCollator(),
                callbacks: [new StopAtStep(2)]).Train();
        }
        string checkpoint = Path.Combine(dir.Path, "checkpoint-2");
        EditJson(Path.Combine(checkpoint, CheckpointFolder.ManifestName), o => o["../checkpoint-1/trainer_state.json"] = new JsonObject { ["size"] = 1, ["sha256"] = "00" });
        using var model = TinyTrainingSetup.Model();
        var trainer = new Trainer(model, args, trainDataset: TinyTrainingSetup.Rows(), dataCollator: new DefaultDataCollator());
        var e = Assert.Throws<InvalidDataException>(() => trainer.Train(checkpoint));
        Assert.Contains(CheckpointFolder.ManifestName, e.Message, StringComparison.Ordinal);
        Assert.Contains("'..'", e.Message, StringComparison.Ordinal);
    }

    private sealed class StopAtStep(int step) : ITrainerCallback
    {
        public void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control)
        {
            if (state.GlobalStep == step) control.ShouldTrainingStop = true;
        }
    }
}
