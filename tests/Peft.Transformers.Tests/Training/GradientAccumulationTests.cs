using Peft.Testing;

namespace Peft.Transformers.Tests.Training;

/// <summary>
/// Gradient accumulation equals one large batch: 2 micro-batches of 2 rows give the same losses, gradient norms and
/// weights as batches of 4, for a causal LM (rows with different numbers of labelled tokens: each micro-batch is
/// weighted by its share of the labels that enter the loss) and for sequence classification (rows).
/// </summary>
public class GradientAccumulationTests
{
    [Theory]
    [InlineData("opt-lora")]
    [InlineData("bert-lora-seqcls")]
    public void TwoMicroBatchesOfTwoEqualOneBatchOfFour(string name)
    {
        using var a = new TempDir();
        using var b = new TempDir();
        var (logs4, w4) = Run(name, a.Path, batch: 4, ga: 1);
        var (logs2, w2) = Run(name, b.Path, batch: 2, ga: 2);
        Assert.Equal(logs4.Count, logs2.Count);
        for (int i = 0; i < logs4.Count; i++)
        {
            Assert.True(Math.Abs(logs4[i]["loss"] - logs2[i]["loss"]) < 2e-6, $"step {i}: loss {logs2[i]["loss"]} vs {logs4[i]["loss"]}");
            Assert.True(Math.Abs(logs4[i]["grad_norm"] - logs2[i]["grad_norm"]) < 1e-5 * logs4[i]["grad_norm"], $"step {i}: grad_norm {logs2[i]["grad_norm"]} vs {logs4[i]["grad_norm"]}");
        }
        foreach (var (k, v) in w4)
        {
            double max = v.Zip(w2[k]).Max(x => Math.Abs(x.First - x.Second));
            Assert.True(max < 1e-5, $"{k}: max difference {max}");
        }
    }

    private static (List<IReadOnlyDictionary<string, double>>, Dictionary<string, float[]>) Run(string name, string dir, int batch, int ga)
    {
        using var pm = TrajectoryReplay.LoadInitial(name);
        var args = TrajectoryReplay.Args(name, dir) with { PerDeviceTrainBatchSize = batch, GradientAccumulationSteps = ga, MaxSteps = 3 };
        var trainer = new Trainer(pm, args, trainDataset: TrajectoryReplay.Rows(name), dataCollator: new DefaultDataCollator());
        trainer.Train();
        return (trainer.State.LogHistory.Where(e => e.ContainsKey("grad_norm")).ToList(), ResumeTests.Weights(pm));
    }
}
