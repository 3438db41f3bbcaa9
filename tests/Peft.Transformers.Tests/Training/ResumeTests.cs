using Peft.Core;
using Peft.Testing;
using TrainerKillChild;

namespace Peft.Transformers.Tests.Training;

/// <summary>
/// An interrupted-and-resumed run equals the uninterrupted one bit for bit (losses, grad norms, final weights):
/// shuffled data, LoRA dropout, AdamW state, schedule, and the loss accumulated since the last log all resume.
/// Checkpoints rotate without losing the best one, cancellation saves first, and damaged checkpoints are named.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public class ResumeTests
{
    private const int Steps = 7;

    private sealed class StopAt(int step) : ITrainerCallback
    {
        public void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control)
        {
            if (state.GlobalStep == step) control.ShouldTrainingStop = true;
        }
    }

    internal static (List<IReadOnlyDictionary<string, double>> Steps, Dictionary<string, float[]> Weights) Run(
        string dir, string? resume, ITrainerCallback? extra = null, TrainingArguments? args = null, CancellationToken ct = default)
    {
        using var model = TinyTrainingSetup.Model();
        var trainer = new Trainer(model, args ?? TinyTrainingSetup.Args(dir, Steps), trainDataset: TinyTrainingSetup.Rows(),
            dataCollator: new DefaultDataCollator(), callbacks: extra is null ? null : [extra]);
        trainer.Train(resume, ct);
        return (trainer.State.LogHistory.Where(e => e.ContainsKey("loss") && e.ContainsKey("grad_norm")).ToList(), Weights(model));
    }

    internal static Dictionary<string, float[]> Weights(PeftModel model) =>
        model.named_parameters().Where(p => p.parameter.requires_grad)
            .ToDictionary(p => p.name, p => p.parameter.detach().cpu().data<float>().ToArray());

    internal static void AssertSameRun((List<IReadOnlyDictionary<string, double>> Steps, Dictionary<string, float[]> Weights) expected,
        (List<IReadOnlyDictionary<string, double>> Steps, Dictionary<string, float[]> Weights) actual)
    {
        Assert.Equal(expected.Steps.Count, actual.Steps.Count);
        for (int i = 0; i < expected.Steps.Count; i++)
            foreach (var key in new[] { "loss", "grad_norm", "learning_rate", "epoch", "step" })
                Assert.True(expected.Steps[i][key] == actual.Steps[i][key], $"step {i + 1} {key}: {actual.Steps[i][key]:R} vs uninterrupted {expected.Steps[i][key]:R}");
        Assert.Equal(expected.Weights.Keys.Order(), actual.Weights.Keys.Order());
        foreach (var (name, w) in expected.Weights) Assert.True(w.SequenceEqual(actual.Weights[name]), $"{name} differs from the uninterrupted run");
    }

    [Fact]
    public void ResumedRunEqualsUninterruptedRunExactly()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        var full = Run(a.Path, null);
        Assert.Equal(Steps, full.Steps.Count);
        Run(b.Path, null, new StopAt(4));
        Assert.Equal(["checkpoint-3", "checkpoint-4"], CheckpointFolder.Sorted(b.Path).Select(Path.GetFileName));
        Directory.Delete(Path.Combine(b.Path, "checkpoint-4"), recursive: true); // resume from step 3: mid-epoch
        AssertSameRun(full, Run(b.Path, "last"));
    }

    [Fact]
    public void CancellationSavesACheckpointAtTheStepBoundaryAndResumesExactly()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        var full = Run(a.Path, null);
        using var cts = new CancellationTokenSource();
        var cancelAfter2 = new CancelAt(2, cts);
        var args = TinyTrainingSetup.Args(b.Path, Steps) with { SaveStrategy = IntervalStrategy.No };
        Assert.Throws<OperationCanceledException>(() => Run(b.Path, null, cancelAfter2, args, cts.Token));
        Assert.Equal(["checkpoint-2"], CheckpointFolder.Sorted(b.Path).Select(Path.GetFileName));
        AssertSameRun(full, Run(b.Path, "last"));
    }

    private sealed class CancelAt(int step, CancellationTokenSource cts) : ITrainerCallback
    {
        public void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control)
        {
            if (state.GlobalStep == step) cts.Cancel();
        }
    }

    [Fact]
    public void CorruptOrIncompleteCheckpointsAreNamedOnResume()
    {
        using var dir = new TempDir();
        Run(dir.Path, null, new StopAt(2));
        string last = CheckpointFolder.Last(dir.Path)!;
        string weights = Path.Combine(last, "trainable.safetensors");
        var bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes[..^7]);
        var e = Assert.Throws<InvalidDataException>(() => Run(dir.Path, "last"));
        Assert.Contains("checkpoint-2", e.Message);
        Assert.Contains("trainable.safetensors", e.Message);

        bytes[^1] ^= 0x5A;
        File.WriteAllBytes(weights, bytes);
        e = Assert.Throws<InvalidDataException>(() => Run(dir.Path, "last"));
        Assert.Contains("SHA-256", e.Message);

        File.Delete(Path.Combine(last, CheckpointFolder.ManifestName));
        e = Assert.Throws<InvalidDataException>(() => Run(dir.Path, last));
        Assert.Contains("incomplete", e.Message);
    }

    [Fact]
    public void RotationKeepsTheLimitAndNeverDeletesTheBestCheckpoint()
    {
        using var dir = new TempDir();
        foreach (int s in new[] { 1, 2, 3, 4, 5 })
            CheckpointFolder.Write(dir.Path, s, d => File.WriteAllText(Path.Combine(d, "x.txt"), s.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        CheckpointFolder.Rotate(dir.Path, 2, Path.Combine(dir.Path, "checkpoint-1"));
        Assert.Equal(["checkpoint-1", "checkpoint-5"], CheckpointFolder.Sorted(dir.Path).Select(Path.GetFileName));
        CheckpointFolder.Rotate(dir.Path, 1, Path.Combine(dir.Path, "checkpoint-1"));
        Assert.Equal(["checkpoint-1", "checkpoint-5"], CheckpointFolder.Sorted(dir.Path).Select(Path.GetFileName));
        CheckpointFolder.Rotate(dir.Path, 1, null);
        Assert.Equal(["checkpoint-5"], CheckpointFolder.Sorted(dir.Path).Select(Path.GetFileName));
        CheckpointFolder.Verify(Path.Combine(dir.Path, "checkpoint-5"));
    }
}
