using Peft.Core.Tuners;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// (IA)³ configuration (PEFT <c>IA3Config</c>, Liu et al. 2022): a learned vector <c>ia3_l</c> per target module that
/// scales the module's OUTPUT (attention keys / values) or, for the modules listed in <see cref="FeedforwardModules"/>,
/// its INPUT. Property names are PEFT's JSON keys.
/// </summary>
public sealed record IA3Config : PeftConfig, ITargetedConfig
{
    /// <inheritdoc />
    [JsonIgnore]
    public override string PeftType => "IA3";

    /// <summary>
    /// HF <c>target_modules</c>: a list (exact name or <c>.name</c> suffix), a full-match regex, or "all-linear". Null =
    /// PEFT's default for the model's <c>model_type</c> (<see cref="IA3Model.DefaultTargetModules"/>).
    /// </summary>
    [JsonPropertyName("target_modules")]
    public TargetModules? TargetModules { get; init; }

    /// <summary>HF <c>exclude_modules</c>: modules never adapted (same matching rules as <see cref="TargetModules"/>).</summary>
    [JsonPropertyName("exclude_modules")]
    public TargetModules? ExcludeModules { get; init; }

    /// <summary>
    /// HF <c>feedforward_modules</c>: the targets whose INPUT is scaled (a list: the module name ends with an entry —
    /// PEFT's plain <c>str.endswith</c>; or a full-match regex). As a list it must be a subset of a list
    /// <see cref="TargetModules"/>. Null = PEFT's default for the model type (<see cref="IA3Model.DefaultFeedforwardModules"/>).
    /// </summary>
    [JsonPropertyName("feedforward_modules")]
    public TargetModules? FeedforwardModules { get; init; }

    /// <summary>
    /// HF <c>fan_in_fan_out</c>: the base weight is stored [in, out] (GPT-2 Conv1D). The layer follows the module type
    /// (Conv1D is always [in, out], Linear [out, in]) and warns when this flag disagrees, as PEFT does.
    /// </summary>
    [JsonPropertyName("fan_in_fan_out")]
    public bool FanInFanOut { get; init; }

    /// <summary>HF <c>modules_to_save</c>: modules trained in full and saved with the adapter (classifier heads).</summary>
    [JsonPropertyName("modules_to_save")]
    [JsonConverter(typeof(StringOrListJsonConverter))]
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    /// <summary>HF <c>init_ia3_weights</c>: true (default) = vectors of ones (a no-op at start); false = standard-normal values.</summary>
    [JsonPropertyName("init_ia3_weights")]
    public bool InitIA3Weights { get; init; } = true;

    /// <inheritdoc />
    protected override IReadOnlyDictionary<string, JsonNode?> PeftDefaults { get; } = new Dictionary<string, JsonNode?>
    {
        ["auto_mapping"] = null,
    };

    /// <inheritdoc />
    [JsonIgnore]
    public override IReadOnlyList<string>? ModulesToSaveNames => ModulesToSave;

    /// <inheritdoc />
    public override PeftConfig WithModulesToSave(IReadOnlyList<string> modules) => this with { ModulesToSave = modules };

    /// <summary>
    /// PEFT's <c>__post_init__</c> check: when both <see cref="FeedforwardModules"/> and <see cref="TargetModules"/> are
    /// lists, every feed-forward module must also be a target.
    /// </summary>
    public override void Validate()
    {
        if (FeedforwardModules?.Names is { } ff && TargetModules?.Names is { } targets)
        {
            var missing = ff.Where(f => !targets.Contains(f)).ToList();
            if (missing.Count > 0)
                throw new ArgumentException(
                    $"IA3Config.feedforward_modules should be a subset of target_modules: {string.Join(", ", missing.Select(m => $"'{m}'"))} " +
                    $"not in {TargetModules}.", nameof(FeedforwardModules));
        }
        if (FeedforwardModules?.IsAllLinear == true)
            throw new ArgumentException("IA3Config.feedforward_modules cannot be \"all-linear\"; list the feed-forward modules or give a regex.", nameof(FeedforwardModules));
    }

    /// <summary>
    /// Whether the module at <paramref name="key"/> is a feed-forward module (input scaling): PEFT's
    /// <c>_check_target_module_feedforward</c> — regex full match, or <c>key.endswith(entry)</c> for a list.
    /// </summary>
    public bool IsFeedforward(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (FeedforwardModules is null) return false;
        if (FeedforwardModules.Names is { } names) return names.Any(n => key.EndsWith(n, StringComparison.Ordinal));
        return FeedforwardModules.Matches(key);
    }
}
