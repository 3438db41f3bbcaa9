using System.Collections;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Datasets;
using Peft.Testing;
using Peft.Transformers;
using static TorchSharp.torch;

namespace Peft.Fuzz;

/// <summary>
/// Trainer checkpoints under fuzz: one target per file the Trainer writes into <c>checkpoint-&lt;step&gt;</c>
/// (trainer_state.json, the optimizer, scheduler and generator states, the trainable weights, the manifest). The seed is
/// a real checkpoint of a tiny LoRA run (step 2 of 3). Each input replaces one file and, except for the manifest's own
/// target, re-seals the manifest with the mutated file's size and SHA-256, so the readers themselves are fuzzed and not
/// only the hash check; then training resumes from the folder and runs its last step. A resume must either work or
/// fail with a documented exception naming the file.
/// </summary>
public static class CheckpointTargets
{
    private const int MaxSteps = 3;

    private static readonly string[] Files =
    [
        "trainer_state.json", "scheduler.json", "rng_state.json", "optimizer.json",
        "optimizer.safetensors", "trainable.safetensors", "rng_state.safetensors", CheckpointFolder.ManifestName,
    ];

    private static readonly Lazy<string> Seed = new(BuildSeed);

    /// <summary>The targets, named "checkpoint-&lt;file&gt;".</summary>
    public static IEnumerable<FuzzTarget> All() => Files.Select(file => new FuzzTarget
    {
        Name = "checkpoint-" + Path.GetFileNameWithoutExtension(file) + (file.EndsWith(".safetensors", StringComparison.Ordinal) ? "-st" : ""),
        FileName = file,
        Seeds = [File.ReadAllBytes(Path.Combine(Seed.Value, file))],
        Prepare = dir =>
        {
            foreach (var f in Directory.GetFiles(Seed.Value, "*", SearchOption.AllDirectories))
            {
                var rel = Path.GetRelativePath(Seed.Value, f);
                if (rel == file) continue;
                Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(dir, rel))!);
                File.Copy(f, Path.Combine(dir, rel));
            }
        },
        Run = dir =>
        {
            if (file != CheckpointFolder.ManifestName) Reseal(dir);
            Resume(dir);
        },
    });

    /// <summary>Resumes a 3-step run from <paramref name="checkpoint"/> and trains its last step.</summary>
    public static void Resume(string checkpoint)
    {
        using var output = new TempDir();
        using var scope = NewDisposeScope();
        using var model = Model();
        var trainer = new Trainer(model, Args(output.Path), trainDataset: Rows(), dataCollator: new DefaultDataCollator());
        trainer.Train(checkpoint);
    }

    /// <summary>Rewrites the manifest from the files now in <paramref name="dir"/> (as the Trainer seals a checkpoint).</summary>
    public static void Reseal(string dir)
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

    private static PeftModel Model()
    {
        var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny"));
        manual_seed(1234);
        return PeftModel.GetPeftModel(model, new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM });
    }

    private static TrainingArguments Args(string outputDir) => new()
    {
        OutputDir = outputDir,
        MaxSteps = MaxSteps,
        PerDeviceTrainBatchSize = 2,
        LearningRate = 5e-3,
        WarmupSteps = 1,
        LoggingSteps = 1,
        SaveStrategy = IntervalStrategy.Steps,
        SaveSteps = 2,
        Seed = 7,
        DisableTqdm = true,
    };

    private static Dataset Rows()
    {
        var ids = Enumerable.Range(0, 6).Select(r => Enumerable.Range(0, 8).Select(i => (long)(4 + (r * 7 + i * 3) % 40)).ToArray()).ToList();
        return Dataset.FromDict(new Dictionary<string, IList>(StringComparer.Ordinal)
        {
            ["input_ids"] = ids,
            ["attention_mask"] = ids.Select(r => r.Select(_ => 1L).ToArray()).ToList(),
            ["labels"] = ids,
        });
    }

    private static string BuildSeed()
    {
        var dir = Path.Combine(Path.GetTempPath(), "peft-fuzz-checkpoint-" + Environment.ProcessId);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        };
        using (var scope = NewDisposeScope())
        using (var model = Model())
        {
            new Trainer(model, Args(dir), trainDataset: Rows(), dataCollator: new DefaultDataCollator()).Train();
        }
        return Path.Combine(dir, CheckpointFolder.Prefix + "2");
    }
}
