using Peft.Core;
using Peft.Datasets;
using Peft.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Training;

/// <summary>
/// The Trainer calls <see cref="ITrainingHooks"/> (loss term before backward, after-step hook with the 0-based step
/// index, gradients still present; the forward's other outputs already disposed when backward runs) and <see cref="IGradientCheckpointing"/> on any model that implements them,
/// without knowing the PEFT method.
/// </summary>
public class HookWiringTests
{
    internal sealed class TinyRegressor : nn.Module<ModelInput, ModelOutput>
    {
        private readonly Embedding emb;
        private readonly nn.Module<Tensor, Tensor> head;

        public TinyRegressor(string name = "TinyRegressor") : base(name)
        {
            manual_seed(11);
            emb = nn.Embedding(10, 4);
            head = nn.Linear(4, 1);
            RegisterComponents();
        }

        public double LastModelLoss { get; private set; }

        public override ModelOutput forward(ModelInput input)
        {
            var h = emb.forward(input.InputIds!).mean([1]);             // [B, 4]
            var y = head.forward(h).squeeze(-1);                         // [B]
            var loss = input.Labels is null ? null : (y - input.Labels).pow(2).mean();
            if (loss is not null) LastModelLoss = loss.item<float>();
            return new ModelOutput { Logits = y.unsqueeze(-1), Loss = loss };
        }

        public Tensor HeadWeight => ((Linear)head).weight!;
    }

    private sealed class Hooked : nn.Module<ModelInput, ModelOutput>, ITrainingHooks, IGradientCheckpointing
    {
        private readonly TinyRegressor inner;

        public Hooked() : base("Hooked")
        {
            inner = new TinyRegressor("inner");
            RegisterComponents();
        }

        public List<int> Steps { get; } = [];
        public List<bool> GradPresentAtStep { get; } = [];
        public List<(double ModelLoss, double Term)> MicroLosses { get; } = [];
        public int TermCalls { get; private set; }
        public bool IsGradientCheckpointing { get; private set; }

        private Tensor? _lastLogits;

        /// <summary>Per micro-batch: whether the forward's logits were already disposed when the loss term was asked for.</summary>
        public List<bool> LogitsDroppedBeforeBackward { get; } = [];

        public override ModelOutput forward(ModelInput input)
        {
            var output = inner.forward(input);
            _lastLogits = output.Logits;
            return output;
        }

        public Tensor? LossTerm()
        {
            TermCalls++;
            LogitsDroppedBeforeBackward.Add(_lastLogits!.IsInvalid);
            var term = inner.HeadWeight.pow(2).sum() * 0.5;
            MicroLosses.Add((inner.LastModelLoss, term.item<float>()));
            return term;
        }

        public void OnOptimizerStep(int globalStep)
        {
            Steps.Add(globalStep);
            GradPresentAtStep.Add(inner.HeadWeight.grad is not null);
        }

        public void GradientCheckpointingEnable() => IsGradientCheckpointing = true;

        public void GradientCheckpointingDisable() => IsGradientCheckpointing = false;
    }

    internal static Dataset Data(int rows = 8)
    {
        var rng = new Random(3);
        return Dataset.FromDict(new Dictionary<string, System.Collections.IList>
        {
            ["input_ids"] = Enumerable.Range(0, rows).Select(_ => Enumerable.Range(0, 5).Select(_ => (long)rng.Next(10)).ToArray()).ToList(),
            ["labels"] = Enumerable.Range(0, rows).Select(_ => rng.NextDouble()).ToList(),
        });
    }

    private static TrainingArguments Args(string dir) => new()
    {
        OutputDir = dir, MaxSteps = 4, PerDeviceTrainBatchSize = 2, GradientAccumulationSteps = 2, LearningRate = 0.1,
        LoggingSteps = 1, SaveStrategy = IntervalStrategy.No, DisableTqdm = true, DataLoaderShuffle = false,
    };

    [Fact]
    public void TrainingHooksAreCalledAtTheHfPoints()
    {
        using var dir = new TempDir();
        using var model = new Hooked();
        var trainer = new Trainer(model, Args(dir.Path) with { GradientCheckpointing = true }, trainDataset: Data());
        Assert.True(model.IsGradientCheckpointing);
        trainer.Train();
        Assert.Equal([0, 1, 2, 3], model.Steps);
        Assert.All(model.GradPresentAtStep, Assert.True);
        Assert.Equal(8, model.TermCalls);                                   // every micro-batch
        Assert.Equal(Enumerable.Repeat(true, 8), model.LogitsDroppedBeforeBackward);  // only the loss is kept for backward (HF compute_loss)
        var logged = trainer.State.LogHistory.Where(e => e.ContainsKey("grad_norm")).Select(e => e["loss"]).ToList();
        Assert.Equal(4, logged.Count);
        for (int s = 0; s < 4; s++)
        {
            // two micro-batches of 2 rows each: weight 1/2 each; the method's term is added to each micro-batch loss
            var (l0, t0) = model.MicroLosses[2 * s];
            var (l1, t1) = model.MicroLosses[2 * s + 1];
            double expected = 0.5 * l0 + t0 + 0.5 * l1 + t1;
            Assert.True(Math.Abs(logged[s] - expected) < 1e-5, $"step {s}: logged {logged[s]} vs {expected}");
        }
    }

    [Fact]
    public void GradientCheckpointingOnAModelWithoutSupportFailsNamingTheType()
    {
        using var dir = new TempDir();
        using var model = new TinyRegressor();
        var e = Assert.Throws<NotSupportedException>(() => new Trainer(model, Args(dir.Path) with { GradientCheckpointing = true }, trainDataset: Data()));
        Assert.Contains("TinyRegressor", e.Message);
        Assert.Contains("IGradientCheckpointing", e.Message);
    }
}
