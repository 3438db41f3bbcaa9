using Peft.Core.Tuners;
using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// Bottleneck adapter configuration ("Adapter Tuning": Houlsby et al. 2019, Pfeiffer et al. 2020). Each target
/// projection gets a residual bottleneck on its output: y = base(x); y + up(act(down(y))) with down [hidden → hidden /
/// reduction_factor] and up back to hidden. PEFT has no such method; this library defines it PEFT-style with
/// <c>peft_type</c> "BOTTLENECK" (file format: the Peft.Core package README). Property names are the JSON keys.
/// The name in the public API contract is <see cref="AdapterConfig"/>; files read back as
/// <see cref="BottleneckAdapterConfig"/>, which is also an <see cref="AdapterConfig"/>.
/// </summary>
public record AdapterConfig : PeftConfig, ITargetedConfig
{
    /// <inheritdoc />
    [JsonIgnore]
    public override string PeftType => "BOTTLENECK";

    /// <summary>
    /// <c>target_modules</c>: the projections whose outputs get an adapter — a list (exact name or <c>.name</c> suffix) or a
    /// full-match regex. Null = the defaults of the model's <c>model_type</c> for <see cref="Placement"/>
    /// (<see cref="BottleneckModel.DefaultPlacements"/>); the saved config holds the resolved value.
    /// </summary>
    [JsonPropertyName("target_modules")]
    public TargetModules? TargetModules { get; init; }

    /// <summary><c>exclude_modules</c>: modules never adapted (same matching rules as <see cref="TargetModules"/>).</summary>
    [JsonPropertyName("exclude_modules")]
    public TargetModules? ExcludeModules { get; init; }

    /// <summary><c>placement</c>: <see cref="BottleneckPlacement.Houlsby"/> (default: attention output and feed-forward output) or <see cref="BottleneckPlacement.Pfeiffer"/> (feed-forward output only); "houlsby" / "pfeiffer" on disk. Used when <see cref="TargetModules"/> is null.</summary>
    [JsonPropertyName("placement")]
    public BottleneckPlacement Placement { get; init; } = BottleneckPlacement.Houlsby;

    /// <summary><c>reduction_factor</c> (default 16): bottleneck size = max(1, hidden / reduction_factor), hidden = the target's output features.</summary>
    [JsonPropertyName("reduction_factor")]
    public int ReductionFactor { get; init; } = 16;

    /// <summary><c>non_linearity</c> between down and up projection (default "relu"; see <see cref="BottleneckActivations.Names"/>).</summary>
    [JsonPropertyName("non_linearity")]
    public string NonLinearity { get; init; } = "relu";

    /// <summary>
    /// <c>init_adapter_weights</c>: true (default) = up-projection weight and bias zero, so the adapter starts as the
    /// identity; false = the up-projection keeps a random (Kaiming-uniform) init (the adapter changes outputs at once; for tests).
    /// </summary>
    [JsonPropertyName("init_adapter_weights")]
    public bool InitAdapterWeights { get; init; } = true;

    /// <summary><c>modules_to_save</c>: modules trained in full and saved with the adapter (classifier heads).</summary>
    [JsonPropertyName("modules_to_save")]
    [JsonConverter(typeof(StringOrListJsonConverter))]
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    /// <inheritdoc />
    [JsonIgnore]
    public override IReadOnlyList<string>? ModulesToSaveNames => ModulesToSave;

    /// <inheritdoc />
    public override PeftConfig WithModulesToSave(IReadOnlyList<string> modules) => this with { ModulesToSave = modules };

    /// <summary>The bottleneck size for a target with <paramref name="hidden"/> output features.</summary>
    public long BottleneckSize(long hidden) => Math.Max(1, hidden / ReductionFactor);

    /// <inheritdoc />
    public override void Validate()
    {
        if (ReductionFactor <= 0)
            throw new ArgumentOutOfRangeException(nameof(ReductionFactor), ReductionFactor, $"AdapterConfig.reduction_factor must be > 0, got {ReductionFactor}.");
        if (!Enum.IsDefined(Placement))
            throw new ArgumentOutOfRangeException(nameof(Placement), Placement, $"AdapterConfig.placement must be Houlsby or Pfeiffer, got {(int)Placement}.");
        if (!BottleneckActivations.IsKnown(NonLinearity))
            throw new ArgumentException($"AdapterConfig.non_linearity \"{NonLinearity}\" is not supported (supported: {string.Join(", ", BottleneckActivations.Names)}).", nameof(NonLinearity));
        if (TargetModules?.IsAllLinear == true)
            throw new ArgumentException("AdapterConfig.target_modules cannot be \"all-linear\" for bottleneck adapters: name the projections, or leave it null to use the placement's defaults.", nameof(TargetModules));
    }
}

/// <summary>
/// The config type bottleneck adapter files (<c>peft_type</c> "BOTTLENECK") are read as (the name); identical to
/// <see cref="AdapterConfig"/>, the name in the public API contract, from which it derives.
/// </summary>
public sealed record BottleneckAdapterConfig : AdapterConfig;
