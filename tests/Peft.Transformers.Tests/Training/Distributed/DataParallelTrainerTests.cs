using Peft.Core;
using Peft.Core.Distributed;
using Peft.Testing;
using TorchSharp;
using TrainerKillChild;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Training.Distributed;

/// <summary>
/// Data parallelism over the in-process group (two threads standing in for two GPUs): two ranks with 2 rows each
/// per step train like one process with 4 rows (same losses, grad norms and adapters up to float32 summation order),
/// rank 0's trainable weights are broadcast at the start, only rank 0 writes checkpoints, and a checkpoint of one world size resumes with another.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public class DataParallelTrainerTests
{
    private const int Steps = 6;
    private const double Tolerance = 2e-5;

    private static PeftModel Model()
    {
        var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny"));   // dropout 0: no draws from the shared generator
        manual_seed(1234);
        return PeftModel.GetPeftModel(model, new LoraConfig { R = 4, LoraAlpha = 8, LoraDropout = 0.0, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM });
    }

    private static TrainingArguments Args(string dir, int perDevice) => new()
    {
        OutputDir = dir, MaxSteps = Steps, PerDeviceTrainBatchSize = perDevice, LearningRate = 5e-3, WeightDecay = 0.01, WarmupSteps = 2,
        LoggingSteps = 1, SaveStrategy = IntervalStrategy.Steps, SaveSteps = 3, Seed = 7, DisableTqdm = true,
    };

    private sealed record RunResult(List<IReadOnlyDictionary<string, double>> Steps, Dictionary<string, float[]> Weights);

    private static RunResult Train(string dir, int perDevice, DataParallel parallel, string? resume = null, PeftModel? built = null)
    {
        using var model = built ?? Model();
        var trainer = new Trainer(model, Args(dir, perDevice), trainDataset: TinyTrainingSetup.Rows(), dataCollator: new DefaultDataCollator(), dataParallel: parallel);
        trainer.Train(resume);
        return new RunResult(trainer.State.LogHistory.Where(e => e.ContainsKey("grad_norm")).ToList(), ResumeTests_Weights(model));
    }

    private static Dictionary<string, float[]> ResumeTests_Weights(PeftModel model) =>
        model.named_parameters().Where(p => p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter.detach().cpu().data<float>().ToArray());

    private static RunResult[] TrainOnRanks(string[] dirs, int perDevice)
    {
        using var group = new InProcessGroup(dirs.Length, TimeSpan.FromSeconds(120));
        var results = new RunResult[dirs.Length];
        var models = dirs.Select(_ => Model()).ToArray();   // built one after the other: the LoRA init draws from the shared generator
        using (no_grad())                                    // rank 1 starts elsewhere: the Trainer broadcasts rank 0's trainable weights (as DDP)
            foreach (var (_, p) in models[^1].named_parameters().Where(p => p.parameter.requires_grad)) p.add_(0.5);
        var errors = new Exception?[dirs.Length];
        var threads = Enumerable.Range(0, dirs.Length).Select(r => new Thread(() =>
        {
            try { results[r] = Train(dirs[r], perDevice, new DataParallel(group.Rank(r)), built: models[r]); }
            catch (Exception e) { errors[r] = e; }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        if (errors.Any(e => e is not null)) throw new AggregateException(errors.Where(e => e is not null)!);
        return results;
    }

    private static void AssertClose(RunResult expected, RunResult actual, int fromStep = 0)
    {
        Assert.Equal(expected.Steps.Count, actual.Steps.Count + fromStep);
        for (int i = 0; i < actual.Steps.Count; i++)
        {
            var (e, a) = (expected.Steps[i + fromStep], actual.Steps[i]);
            Assert.Equal(e["step"], a["step"]);
            Assert.Equal(e["learning_rate"], a["learning_rate"]);
            foreach (var key in new[] { "loss", "grad_norm" })
                Assert.True(Math.Abs(e[key] - a[key]) <= Tolerance * Math.Abs(e[key]), $"step {a["step"]} {key}: {a[key]:R} vs one process {e[key]:R}");
        }
        foreach (var (name, w) in expected.Weights)
        {
            double diff = w.Zip(actual.Weights[name], (x, y) => Math.Abs(x - y)).Max();
            Assert.True(diff <= 1e-5, $"{name}: max diff {diff} from the one-process run");
        }
    }

    [Fact]
    public void TwoRanksWithHalfTheBatchTrainLikeOneProcessWithTheGlobalBatch()
    {
        using var one = new TempDir();
        using var r0 = new TempDir();
        using var r1 = new TempDir();
        var single = Train(one.Path, 4, DataParallel.None);
        Assert.Equal(Steps, single.Steps.Count);
        var ranks = TrainOnRanks([r0.Path, r1.Path], 2);
        AssertClose(single, ranks[0]);
        AssertClose(single, ranks[1]);                      // rank 1 logs the same (all-reduced) loss and holds the same adapters
        Assert.Equal(["checkpoint-3", "checkpoint-6"], CheckpointFolder.Sorted(r0.Path).Select(Path.GetFileName));
        Assert.Empty(Directory.GetFileSystemEntries(r1.Path)); // only rank 0 writes
    }

    [Fact]
    public void ACheckpointOfTwoRanksResumesInOneProcessAndAChangedGlobalBatchIsRefused()
    {
        using var one = new TempDir();
        using var r0 = new TempDir();
        using var r1 = new TempDir();
        var single = Train(one.Path, 4, DataParallel.None);
        TrainOnRanks([r0.Path, r1.Path], 2);
        Directory.Delete(Path.Combine(r0.Path, "checkpoint-6"), recursive: true);
        var resumed = Train(r0.Path, 4, DataParallel.None, resume: "last");   // steps 4..6 with world size 1
        Assert.Equal([1, 2, 3, 4, 5, 6], resumed.Steps.Select(e => (int)e["step"]).Distinct());
        AssertClose(single, resumed with { Steps = resumed.Steps.Where(e => e["step"] > 3).ToList() }, fromStep: 3);
        var e = Assert.Throws<InvalidDataException>(() => Train(r0.Path, 2, DataParallel.None, resume: Path.Combine(r0.Path, "checkpoint-3")));
        Assert.Contains("global batch of 4 rows", e.Message);
        Assert.Contains("this run has 2 (2 × 1)", e.Message);
    }

    [Fact]
    public void GradientsAreAveragedInBucketsAcrossDtypes()
    {
        using var group = new InProcessGroup(2);
        var outputs = new float[2][];
        var threads = Enumerable.Range(0, 2).Select(r => new Thread(() =>
        {
            var ps = new[]
            {
                new TorchSharp.Modules.Parameter(zeros(3)), new TorchSharp.Modules.Parameter(zeros(2, 2)),
                new TorchSharp.Modules.Parameter(zeros(2, dtype: ScalarType.Float64)), new TorchSharp.Modules.Parameter(zeros(1)),
            };
            ps[0].grad = full(3, r + 1.0f);
            ps[1].grad = full(new long[] { 2, 2 }, 10.0f * r);
            ps[2].grad = full(2, r == 0 ? 1.0 : 3.0, dtype: ScalarType.Float64);
            // ps[3] has no gradient on either rank: it gets zeros
            new DataParallel(group.Rank(r), bucketBytes: 16).AverageGradients(ps);   // 16 bytes: several buckets
            outputs[r] = ps.SelectMany(p => p.grad!.to(ScalarType.Float32).data<float>().ToArray()).ToArray();
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        float[] expected = [1.5f, 1.5f, 1.5f, 5, 5, 5, 5, 2, 2, 0];
        Assert.Equal(expected, outputs[0]);
        Assert.Equal(expected, outputs[1]);
    }
}
