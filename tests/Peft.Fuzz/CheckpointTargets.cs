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
/// only the hash check; then a new <see cref="Trainer"/> resumes from the folder (<c>Train(checkpoint)</c>, the public
/// entry of a real resume, with all its checks) and runs its last step and final save. A resume must either work or fail
/// with a documented exception naming the file.
/// </summary>
/// <remarks>
/// Per-input cost is the resume itself: the folder is prepared once (<see cref="FuzzTarget.PreparesOnce"/>), the
/// manifest entries of the unchanged files are hashed once, and each target builds its tiny LoRA model once and hands
/// it to every resume. Reusing the model is sound because a resume overwrites every trainable parameter from
/// trainable.safetensors (a strict load) before the step, the frozen ones never change, and gradients are cleared first.
/// </remarks>
public static class CheckpointTargets
{
    private const int MaxSteps = 3;

    private static readonly string[] Files =
    [
        "trainer_state.json", "scheduler.json", "rng_state.json", "optimizer.json",
        "optimizer.safetensors", "trainable.safetensors", "rng_state.safetensors", CheckpointFolder.ManifestName,
    ];

    private static readonly Lazy<string> Seed = new(BuildSeed);

    // Manifest entries of the seed's files, hashed once; each input replaces its own file's entry.
    private static readonly Lazy<IReadOnlyDictionary<string, (long Size, string Sha256)>> SeedManifest = new(() =>
        Directory.GetFiles(Seed.Value, "*", SearchOption.AllDirectories)
            .Select(f => (Rel: Relative(Seed.Value, f), Entry: Entry(f)))
            .Where(x => x.Rel != CheckpointFolder.ManifestName)
            .ToDictionary(x => x.Rel, x => x.Entry, StringComparer.Ordinal));

    private static readonly Lazy<Dataset> TrainRows = new(Rows);

    /// <summary>The targets, named "checkpoint-&lt;file&gt;"; each owns one model, built at its first input.</summary>
    public static IEnumerable<FuzzTarget> All() => Files.Select(file =>
    {
        var model = new Lazy<PeftModel>(Model);
        var output = Path.Combine(FuzzRunner.ScratchRoot, $"peft-fuzz-resume-{Environment.ProcessId}-{Guid.NewGuid():N}");
        AppDomain.CurrentDomain.ProcessExit += (_, _) => DeleteQuietly(output);
        return new FuzzTarget
        {
            Name = "checkpoint-" + Path.GetFileNameWithoutExtension(file) + (file.EndsWith(".safetensors", StringComparison.Ordinal) ? "-st" : ""),
            FileName = file,
            Seeds = [File.ReadAllBytes(Path.Combine(Seed.Value, file))],
            PreparesOnce = true,
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
                if (file != CheckpointFolder.ManifestName) Reseal(dir, file);
                DeleteQuietly(output);
                Resume(model.Value, dir, output);
            },
        };
    });

    /// <summary>
    /// Resumes a 3-step run of <paramref name="model"/> from <paramref name="checkpoint"/> through a new
    /// <see cref="Trainer"/> writing to <paramref name="outputDir"/>, and trains its last step.
    /// </summary>
    public static void Resume(PeftModel model, string checkpoint, string outputDir)
    {
        using var scope = NewDisposeScope();
        model.zero_grad();
        var trainer = new Trainer(model, Args(outputDir), trainDataset: TrainRows.Value, dataCollator: new DefaultDataCollator());
        trainer.Train(checkpoint);
    }

    /// <summary>
    /// Rewrites the manifest of a folder that holds the seed's files with only <paramref name="changed"/> replaced (as
    /// the Trainer seals a checkpoint: size and SHA-256 of every other file), hashing that one file.
    /// </summary>
    public static void Reseal(string dir, string changed)
    {
        var manifest = new JsonObject();
        foreach (var (rel, seed) in SeedManifest.Value.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var (size, sha) = rel == changed ? Entry(Path.Combine(dir, rel)) : seed;
            manifest[rel] = new JsonObject { ["size"] = size, ["sha256"] = sha };
        }
        File.WriteAllText(Path.Combine(dir, CheckpointFolder.ManifestName), manifest.ToJsonString());
    }

    private static string Relative(string dir, string file) => Path.GetRelativePath(dir, file).Replace('\\', '/');

    private static (long Size, string Sha256) Entry(string file)
    {
        var bytes = File.ReadAllBytes(file);
        return (bytes.LongLength, Convert.ToHexStringLower(SHA256.HashData(bytes)));
    }

    private static void DeleteQuietly(string dir)
    {
        try
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
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
        var dir = Path.Combine(FuzzRunner.ScratchRoot, "peft-fuzz-checkpoint-" + Environment.ProcessId);
        DeleteQuietly(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => DeleteQuietly(dir);
        using (var scope = NewDisposeScope())
        using (var model = Model())
        {
            new Trainer(model, Args(dir), trainDataset: TrainRows.Value, dataCollator: new DefaultDataCollator()).Train();
        }
        return Path.Combine(dir, CheckpointFolder.Prefix + "2");
    }
}
