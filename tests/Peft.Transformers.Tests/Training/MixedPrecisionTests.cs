using Peft.Testing;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Training;

/// <summary>
/// bf16 mixed precision (TorchSharp 0.107 has no autocast): the model runs in bfloat16 with float32 master copies of
/// the trainable parameters; on CPU it follows the fp32 reference trajectory to bf16 accuracy.
/// </summary>
public class MixedPrecisionTests(ITestOutputHelper output)
{
    [Fact]
    public void Bf16TrainsWithFloat32MasterWeightsAndTracksTheReference()
    {
        using var dir = new TempDir();
        using var pm = TrajectoryReplay.LoadInitial("opt-lora");
        var args = TrajectoryReplay.Args("opt-lora", dir.Path) with { Bf16 = true, MaxSteps = 4 };
        var trainer = new Trainer(pm, args, trainDataset: TrajectoryReplay.Rows("opt-lora"), dataCollator: new DefaultDataCollator());
        trainer.Train();
        Assert.All(pm.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        var reference = TrajectoryReplay.Trajectory("opt-lora")["loss_per_step"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
        var losses = trainer.State.LogHistory.Where(e => e.ContainsKey("grad_norm")).Select(e => e["loss"]).ToArray();
        double max = losses.Select((l, i) => Math.Abs(l - reference[i])).Max();
        output.WriteLine($"bf16 on CPU: max |loss - fp32 reference| over 4 steps = {max:E2}");
        Assert.True(max < 0.05, $"bf16 losses {string.Join(", ", losses)} drift from the fp32 reference by {max}");
    }
}
