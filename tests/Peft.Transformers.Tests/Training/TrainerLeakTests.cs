using Peft.Core;
using Peft.Testing;

namespace Peft.Transformers.Tests.Training;

/// <summary>
/// 200 training steps of a LoRA-wrapped tiny module (PEFT on a plain <c>nn.Module</c>), with evaluation and
/// checkpoints every 50 steps, leave the live native tensor count flat. (A tiny module keeps it fast; the opt-tiny
/// path runs the same loop in the trajectory tests.)
/// </summary>
[Collection(LeakTestCollection.Name)]
public class TrainerLeakTests
{
    [Fact]
    public void TwoHundredStepsKeepTheLiveTensorCountFlat()
    {
        using var dir = new TempDir();
        using var pm = PeftModel.GetPeftModel(new HookWiringTests.TinyRegressor(), new LoraConfig { R = 2, TargetModules = ["head"], LoraDropout = 0.1 });
        var rows = HookWiringTests.Data(12);
        var growth = new List<long>();
        var args = new TrainingArguments
        {
            OutputDir = dir.Path, MaxSteps = 200, PerDeviceTrainBatchSize = 4, LoggingSteps = 1, SaveSteps = 50, SaveTotalLimit = 1,
            EvalStrategy = IntervalStrategy.Steps, EvalSteps = 50,
            DisableTqdm = true, WeightDecay = 0.01, LearningRate = 1e-3,
        };
        var counter = new LiveCount();
        var trainer = new Trainer(pm, args, trainDataset: rows, evalDataset: rows, dataCollator: new DefaultDataCollator(), callbacks: [counter]);
        trainer.Train();
        Assert.Equal(200, counter.Counts.Count);
        long afterWarmup = counter.Counts[9];
        long last = counter.Counts[^1];
        Assert.True(last - afterWarmup <= 0, $"live tensors grew from {afterWarmup} (step 10) to {last} (step 200)");
    }

    private sealed class LiveCount : ITrainerCallback
    {
        public List<long> Counts { get; } = [];

        public void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control) => Counts.Add(LeakCheck.LiveTensors);
    }
}
