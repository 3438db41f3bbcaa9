using Peft.Core;
using Peft.Datasets;
using Peft.Testing;
using Xunit.Abstractions;

namespace Peft.Transformers.Tests.Training;

/// <summary>
/// Every PEFT method trains through the <see cref="Trainer"/> with no method-specific code: the tiny OPT learns the
/// same 16 quotes for several epochs (so the loss must fall), only adapter parameters change, and the saved adapter
/// reloads onto a fresh base with the trained logits. AdaLoRA's regulariser and rank allocation run through
/// <see cref="ITrainingHooks"/> (its exact trajectory is pinned by <see cref="TrajectoryFixtureTests"/>).
/// </summary>
public class TrainerPeftMethodsTests(ITestOutputHelper output)
{
    public static TheoryData<string> Methods => new() { "lora", "adalora", "ia3", "prompt", "p-tuning", "prefix", "bottleneck" };

    private static PeftConfig Config(string method) => method switch
    {
        "lora" => new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM },
        "adalora" => new AdaLoraConfig { InitR = 6, TargetR = 2, Tinit = 2, Tfinal = 4, DeltaT = 2, TotalStep = 16, LoraAlpha = 8, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM },
        "ia3" => new IA3Config { TargetModules = ["k_proj", "v_proj", "fc2"], FeedforwardModules = ["fc2"], TaskType = TaskType.CausalLM },
        "prompt" => new PromptTuningConfig { NumVirtualTokens = 4, TaskType = TaskType.CausalLM },
        "p-tuning" => new PromptEncoderConfig { NumVirtualTokens = 4, EncoderHiddenSize = 32, TaskType = TaskType.CausalLM },
        "prefix" => new PrefixTuningConfig { NumVirtualTokens = 4, TaskType = TaskType.CausalLM },
        "bottleneck" => new BottleneckAdapterConfig { ReductionFactor = 4, TaskType = TaskType.CausalLM },
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, null),
    };

    [Theory]
    [MemberData(nameof(Methods))]
    public void MethodTrainsThroughTheTrainerAndReloads(string method)
    {
        using var dir = new TempDir();
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("opt-tiny"));
        var quotes = DatasetLoader.LoadDataset("json", Fixtures.Data("quotes.jsonl"))["train"].Select(Enumerable.Range(0, 16))
            .Map(b => tok.EncodeBatch(b.Column<string>("quote"), truncation: true, maxLength: 24).ToColumns(), batched: true);
        var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny"));
        using var pm = PeftModel.GetPeftModel(model, Config(method));
        var frozenBefore = pm.named_parameters().Where(p => !p.parameter.requires_grad).Select(p => (p.name, p.parameter.detach().clone())).ToList();
        var args = new TrainingArguments
        {
            OutputDir = dir.Path, PerDeviceTrainBatchSize = 8, MaxSteps = 16, LoggingSteps = 2, LearningRate = 1e-2,
            SaveStrategy = IntervalStrategy.No, DisableTqdm = true, DataLoaderShuffle = false,
        };
        var trainer = new Trainer(pm, args, trainDataset: quotes, dataCollator: new DataCollatorForLanguageModeling(tok, mlm: false));
        var result = trainer.Train();
        Assert.Equal(16, result.GlobalStep);
        var losses = trainer.State.LogHistory.Where(e => e.ContainsKey("grad_norm")).Select(e => e["loss"]).ToList();
        output.WriteLine($"{method}: " + string.Join(", ", losses.Select(l => l.ToString("F4", System.Globalization.CultureInfo.InvariantCulture))));
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        Assert.True(losses[^1] < losses[0], $"{method}: loss did not fall ({losses[0]} -> {losses[^1]})");
        foreach (var (name, before) in frozenBefore)
        {
            var now = pm.named_parameters().First(p => p.name == name).parameter;
            Assert.True(now.allclose(before, rtol: 0, atol: 0), $"{method}: frozen parameter {name} changed");
        }

        trainer.SaveModel();
        pm.eval();
        using var batch = tok.EncodeBatch(["Two things are infinite"], padding: true);
        var input = new ModelInput { InputIds = batch.InputIds, AttentionMask = batch.AttentionMask };
        using var trained = pm.forward(input).Logits!.detach().clone();
        using var again = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny")), dir.Path);
        using var reloaded = again.forward(input).Logits!;
        TensorAssert.Close(trained, reloaded, 1e-5, what: $"{method} reloaded logits");
    }
}
