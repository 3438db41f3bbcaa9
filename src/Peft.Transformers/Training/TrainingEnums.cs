using System.Text.Json.Serialization;

namespace Peft.Transformers;

/// <summary>The learning-rate schedule (HF <c>SchedulerType</c>, <c>lr_scheduler_type</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SchedulerType>))]
public enum SchedulerType
{
    /// <summary>Linear warm-up, then linear decay to 0 (HF "linear").</summary>
    [JsonStringEnumMemberName("linear")] Linear,
    /// <summary>Linear warm-up, then half a cosine to 0 (HF "cosine").</summary>
    [JsonStringEnumMemberName("cosine")] Cosine,
    /// <summary>Linear warm-up, then cosine with hard restarts (HF "cosine_with_restarts").</summary>
    [JsonStringEnumMemberName("cosine_with_restarts")] CosineWithRestarts,
    /// <summary>Linear warm-up, then polynomial decay to <c>lr_end</c> (HF "polynomial").</summary>
    [JsonStringEnumMemberName("polynomial")] Polynomial,
    /// <summary>Constant learning rate (HF "constant").</summary>
    [JsonStringEnumMemberName("constant")] Constant,
    /// <summary>Linear warm-up, then constant (HF "constant_with_warmup").</summary>
    [JsonStringEnumMemberName("constant_with_warmup")] ConstantWithWarmup,
    /// <summary>Linear warm-up, then 1/sqrt decay (HF "inverse_sqrt").</summary>
    [JsonStringEnumMemberName("inverse_sqrt")] InverseSqrt,
}

/// <summary>When to log, evaluate or save (HF <c>IntervalStrategy</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<IntervalStrategy>))]
public enum IntervalStrategy
{
    /// <summary>Never (HF "no").</summary>
    [JsonStringEnumMemberName("no")] No,
    /// <summary>Every N optimizer steps (HF "steps").</summary>
    [JsonStringEnumMemberName("steps")] Steps,
    /// <summary>At the end of each epoch (HF "epoch").</summary>
    [JsonStringEnumMemberName("epoch")] Epoch,
}
