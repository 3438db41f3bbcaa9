using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// AdaLoRA configuration (PEFT <c>AdaLoraConfig(LoraConfig)</c>): LoRA in SVD form ΔW = B·diag(E)·A whose rank budget
/// is re-allocated during training. Three phases: <see cref="Tinit"/> warm-up steps at the full budget
/// (<see cref="InitR"/> per module), a cubic decrease of the total budget until step <c>total_step − tfinal</c>
/// (masking every <see cref="DeltaT"/> steps), then <see cref="Tfinal"/> steps at the final budget
/// (<see cref="TargetR"/> per module on average). <see cref="LoraConfig.R"/> is not used (PEFT ignores it too).
/// </summary>
public record AdaLoraConfig : LoraConfig
{
    /// <inheritdoc />
    [JsonIgnore]
    public override string PeftType => "ADALORA";

    /// <summary>HF <c>target_r</c>: the target average rank per module (default 8).</summary>
    [JsonPropertyName("target_r")]
    public int TargetR { get; init; } = 8;

    /// <summary>HF <c>init_r</c>: the initial rank of every module (default 12).</summary>
    [JsonPropertyName("init_r")]
    public int InitR { get; init; } = 12;

    /// <summary>HF <c>tinit</c>: warm-up steps without rank reduction (default 0).</summary>
    [JsonPropertyName("tinit")]
    public int Tinit { get; init; }

    /// <summary>HF <c>tfinal</c>: final steps at the final budget (default 0).</summary>
    [JsonPropertyName("tfinal")]
    public int Tfinal { get; init; }

    /// <summary>HF <c>deltaT</c>: steps between two budget allocations (default 1).</summary>
    [JsonPropertyName("deltaT")]
    public int DeltaT { get; init; } = 1;

    /// <summary>HF <c>beta1</c>: EMA factor of the sensitivity (default 0.85; must be in (0, 1) to train).</summary>
    [JsonPropertyName("beta1")]
    public double Beta1 { get; init; } = 0.85;

    /// <summary>HF <c>beta2</c>: EMA factor of the uncertainty (default 0.85; must be in (0, 1) to train).</summary>
    [JsonPropertyName("beta2")]
    public double Beta2 { get; init; } = 0.85;

    /// <summary>HF <c>orth_reg_weight</c>: weight of the orthogonal regulariser added to the training loss (default 0.5; ≥ 0).</summary>
    [JsonPropertyName("orth_reg_weight")]
    public double OrthRegWeight { get; init; } = 0.5;

    /// <summary>HF <c>total_step</c>: the number of training steps (required, &gt; 0).</summary>
    [JsonPropertyName("total_step")]
    public int? TotalStep { get; init; }

    /// <summary>
    /// HF <c>rank_pattern</c>: per module (key <c>&lt;module path&gt;.lora_E</c>, as PEFT saves it) which of the
    /// <see cref="InitR"/> singular values are kept. Set by the rank allocator during training and written on save;
    /// loading an adapter with it shrinks the modules to the kept ranks. Null before any allocation.
    /// </summary>
    [JsonPropertyName("rank_pattern")]
    public new IReadOnlyDictionary<string, IReadOnlyList<bool>>? RankPattern { get; init; }

    /// <summary>The step from which the budget is final: <c>total_step − tfinal</c>.</summary>
    [JsonIgnore]
    public int FinalStep => (TotalStep ?? 0) - Tfinal;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (UseDora) throw new ArgumentException($"{PeftType} does not support DoRA (use_dora = true).", nameof(UseDora));
        if (TotalStep is not > 0)
            throw new ArgumentException($"AdaLoRA does not work when total_step is {(TotalStep is null ? "null" : TotalStep.ToString())}: supply a value > 0.", nameof(TotalStep));
        if (OrthRegWeight < 0)
            throw new ArgumentOutOfRangeException(nameof(OrthRegWeight), OrthRegWeight, $"orth_reg_weight should be greater than or equal to 0, got {OrthRegWeight}.");
        if (InitR < 0) throw new ArgumentOutOfRangeException(nameof(InitR), InitR, $"init_r must be >= 0, got {InitR}.");
        if (TargetR < 0) throw new ArgumentOutOfRangeException(nameof(TargetR), TargetR, $"target_r must be >= 0, got {TargetR}.");
        if (InitR > AdapterLimits.MaxRank) throw new ArgumentOutOfRangeException(nameof(InitR), InitR, $"AdaLoraConfig.init_r {InitR} is larger than the limit of {AdapterLimits.MaxRank}; refusing before allocating.");
        if (TargetR > AdapterLimits.MaxRank) throw new ArgumentOutOfRangeException(nameof(TargetR), TargetR, $"AdaLoraConfig.target_r {TargetR} is larger than the limit of {AdapterLimits.MaxRank}; refusing before allocating.");
        if (DeltaT <= 0) throw new ArgumentOutOfRangeException(nameof(DeltaT), DeltaT, $"deltaT must be > 0, got {DeltaT}.");
        if (Tinit >= TotalStep - Tfinal)
            throw new ArgumentException(
                $"The supplied schedule values don't allow for a budgeting phase (tinit {Tinit} >= total_step {TotalStep} - tfinal {Tfinal}). Decrease tfinal / tinit or increase total_step.", nameof(Tinit));
        if (RankPattern is not null)
        {
            foreach (var (k, v) in RankPattern)
            {
                if (v is null || v.Count != InitR)
                    throw new ArgumentException($"rank_pattern[\"{k}\"] has {v?.Count ?? 0} entries, expected init_r = {InitR}.", nameof(RankPattern));
            }
        }
    }
}
