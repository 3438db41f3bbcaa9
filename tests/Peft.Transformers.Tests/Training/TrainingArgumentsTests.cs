using System.Text.Json.Nodes;
using Peft.Testing;

namespace Peft.Transformers.Tests.Training;

/// <summary>Arguments serialise with HF's keys and values, and unsupported values fail at construction naming the field.</summary>
public class TrainingArgumentsTests
{
    [Fact]
    public void SerialisesWithHfKeysAndRoundTrips()
    {
        var args = new TrainingArguments
        {
            OutputDir = "out", EvalStrategy = IntervalStrategy.Epoch, LrSchedulerType = SchedulerType.CosineWithRestarts,
            PerDeviceTrainBatchSize = 16, NumTrainEpochs = 3, LoggingSteps = 30, LearningRate = 2e-4, ReportTo = ["jsonl"],
        };
        var json = JsonNode.Parse(args.ToJson())!.AsObject();
        Assert.Equal("out", json["output_dir"]!.GetValue<string>());
        Assert.Equal("epoch", json["eval_strategy"]!.GetValue<string>());
        Assert.Equal("cosine_with_restarts", json["lr_scheduler_type"]!.GetValue<string>());
        Assert.Equal(16, json["per_device_train_batch_size"]!.GetValue<int>());
        Assert.Equal(2e-4, json["learning_rate"]!.GetValue<double>());
        Assert.Equal("adamw_torch", json["optim"]!.GetValue<string>());
        Assert.Equal(args, TrainingArguments.FromJson(args.ToJson()) with { ReportTo = args.ReportTo });
        Assert.Throws<System.Text.Json.JsonException>(() => TrainingArguments.FromJson("{\"output_dirr\": \"x\"}"));
    }

    public static TheoryData<string, Func<TrainingArguments, TrainingArguments>> Invalid => new()
    {
        { "Optim", a => a with { Optim = "adafactor" } },
        { "ReportTo", a => a with { ReportTo = ["wandb"] } },
        { "PerDeviceTrainBatchSize", a => a with { PerDeviceTrainBatchSize = 0 } },
        { "GradientAccumulationSteps", a => a with { GradientAccumulationSteps = -1 } },
        { "WarmupSteps", a => a with { WarmupSteps = 2.5 } },
        { "EvalStrategy", a => a with { LoadBestModelAtEnd = true } },
        { "SaveStrategy", a => a with { LoadBestModelAtEnd = true, EvalStrategy = IntervalStrategy.Epoch } },
        { "LoggingSteps", a => a with { LoggingSteps = 0 } },
        { "LrSchedulerKwargs", a => a with { LrSchedulerKwargs = new Dictionary<string, double> { ["power"] = 2 } } },
        { "Fp16", a => a with { Fp16 = true, Bf16 = true } },
        { "Device", a => a with { Device = "tpu:0" } },
        { "AdamBeta2", a => a with { AdamBeta2 = 1.0 } },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void UnsupportedValuesFailAtConstructionNamingTheField(string field, Func<TrainingArguments, TrainingArguments> edit)
    {
        using var dir = new TempDir();
        using var model = new HookWiringTests.TinyRegressor();
        var e = Assert.ThrowsAny<ArgumentException>(() => new Trainer(model, edit(new TrainingArguments { OutputDir = dir.Path })));
        Assert.Contains(field, e.Message);
    }

    [Fact]
    public void Fp16IsAClearErrorNotASilentNoOp()
    {
        using var dir = new TempDir();
        using var model = new HookWiringTests.TinyRegressor();
        var e = Assert.Throws<NotSupportedException>(() => new Trainer(model, new TrainingArguments { OutputDir = dir.Path, Fp16 = true }));
        Assert.Contains("Fp16", e.Message);
    }

    [Fact]
    public void WarmupAcceptsAFractionAsTransformersV5()
    {
        Assert.Equal(3, new TrainingArguments { WarmupSteps = 0.1 }.GetWarmupSteps(25));
        Assert.Equal(5, new TrainingArguments { WarmupSteps = 5 }.GetWarmupSteps(25));
        Assert.Equal(5, new TrainingArguments { WarmupRatio = 0.2 }.GetWarmupSteps(25));
    }
}
