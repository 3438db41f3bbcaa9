using Peft.Core.Tuners;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// LoRA configuration (PEFT <c>LoraConfig</c>): W' = W + s·B·A with A [r, in], B [out, r] and s = lora_alpha / r
/// (or lora_alpha / √r with <see cref="UseRslora"/>). Property names are PEFT's JSON keys.
/// </summary>
public record LoraConfig : PeftConfig
{
    /// <inheritdoc />
    [JsonIgnore]
    public override string PeftType => "LORA";

    /// <summary>HF <c>r</c>: the rank (default 8). Must be &gt; 0.</summary>
    [JsonPropertyName("r")]
    public int R { get; init; } = 8;

    /// <summary>HF <c>lora_alpha</c> (default 8). Must be &gt; 0.</summary>
    [JsonPropertyName("lora_alpha")]
    public double LoraAlpha { get; init; } = 8;

    /// <summary>HF <c>lora_dropout</c>: dropout on the LoRA branch input during training (default 0).</summary>
    [JsonPropertyName("lora_dropout")]
    public double LoraDropout { get; init; }

    /// <summary>
    /// HF <c>target_modules</c>: a list (exact name or <c>.name</c> suffix), a full-match regex, or "all-linear". Null =
    /// the default for the model's <c>model_type</c> (<see cref="LoraModel.DefaultTargetModules"/>).
    /// </summary>
    [JsonPropertyName("target_modules")]
    public TargetModules? TargetModules { get; init; }

    /// <summary>HF <c>exclude_modules</c>: modules never adapted (same matching rules as <see cref="TargetModules"/>).</summary>
    [JsonPropertyName("exclude_modules")]
    public TargetModules? ExcludeModules { get; init; }

    /// <summary>HF <c>layers_to_transform</c>: only adapt these layer indices (the number after <see cref="LayersPattern"/> in the name).</summary>
    [JsonPropertyName("layers_to_transform")]
    [JsonConverter(typeof(IntOrListJsonConverter))]
    public IReadOnlyList<int>? LayersToTransform { get; init; }

    /// <summary>HF <c>layers_pattern</c>: the name of the layer list ("layers", "h", ...); null = any <c>.&lt;name&gt;.&lt;index&gt;.</c>.</summary>
    [JsonPropertyName("layers_pattern")]
    [JsonConverter(typeof(StringOrListJsonConverter))]
    public IReadOnlyList<string>? LayersPattern { get; init; }

    /// <summary>HF <c>rank_pattern</c>: per-module rank overrides (key = name suffix or regex).</summary>
    [JsonPropertyName("rank_pattern")]
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();

    /// <summary>HF <c>alpha_pattern</c>: per-module alpha overrides (key = name suffix or regex).</summary>
    [JsonPropertyName("alpha_pattern")]
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();

    /// <summary>HF <c>bias</c>: <see cref="LoraBias.None"/> (default), <see cref="LoraBias.All"/> (every bias trains and is saved) or <see cref="LoraBias.LoraOnly"/> (biases of adapted layers); "none" / "all" / "lora_only" on disk.</summary>
    [JsonPropertyName("bias")]
    public LoraBias Bias { get; init; } = LoraBias.None;

    /// <summary>HF <c>fan_in_fan_out</c>: the base weight is stored [in, out] (GPT-2 Conv1D; forced on there, with a warning).</summary>
    [JsonPropertyName("fan_in_fan_out")]
    public bool FanInFanOut { get; init; }

    /// <summary>HF <c>use_rslora</c>: scale by lora_alpha / √r instead of lora_alpha / r.</summary>
    [JsonPropertyName("use_rslora")]
    public bool UseRslora { get; init; }

    /// <summary>HF <c>use_dora</c>: weight-decomposed LoRA (a learned magnitude per output feature).</summary>
    [JsonPropertyName("use_dora")]
    public bool UseDora { get; init; }

    /// <summary>HF <c>modules_to_save</c>: modules trained in full and saved with the adapter (classifier heads).</summary>
    [JsonPropertyName("modules_to_save")]
    [JsonConverter(typeof(StringOrListJsonConverter))]
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    /// <summary>HF <c>init_lora_weights</c>: true (Kaiming-uniform A, zero B: a no-op at start), "gaussian" (A ~ N(0, 1/r), zero B), false (random A and B).</summary>
    [JsonPropertyName("init_lora_weights")]
    public LoraInit InitLoraWeights { get; init; } = LoraInit.Default;

    /// <inheritdoc />
    protected override IReadOnlyDictionary<string, JsonNode?> PeftDefaults { get; } = new Dictionary<string, JsonNode?>
    {
        ["alora_invocation_tokens"] = null, ["arrow_config"] = null, ["auto_mapping"] = null, ["corda_config"] = null,
        ["ensure_weight_tying"] = false, ["eva_config"] = null, ["kasa_config"] = null, ["layer_replication"] = null,
        ["loftq_config"] = new JsonObject(), ["lora_bias"] = false, ["lora_ga_config"] = null, ["megatron_config"] = null,
        ["megatron_core"] = "megatron.core", ["monteclora_config"] = null, ["qalora_group_size"] = 16,
        ["target_parameters"] = null, ["trainable_token_indices"] = null, ["use_bdlora"] = null, ["use_qalora"] = false,
        ["velora_config"] = null,
    };

    /// <inheritdoc />
    [JsonIgnore]
    public override IReadOnlyList<string>? ModulesToSaveNames => ModulesToSave;

    /// <inheritdoc />
    public override PeftConfig WithModulesToSave(IReadOnlyList<string> modules) => this with { ModulesToSave = modules };

    /// <summary>The scale s of an adapter with rank <paramref name="r"/> and alpha <paramref name="alpha"/>.</summary>
    public double Scaling(int r, double alpha) => UseRslora ? alpha / Math.Sqrt(r) : alpha / r;

    /// <inheritdoc />
    public override void Validate()
    {
        AdapterLimits.Size(GetType().Name, "r", R, AdapterLimits.MaxRank);
        AdapterLimits.Alpha(GetType().Name, "lora_alpha", LoraAlpha);
        if (LoraDropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(LoraDropout), LoraDropout, $"LoraConfig.lora_dropout must be in [0, 1), got {LoraDropout}.");
        if (!Enum.IsDefined(Bias))
            throw new ArgumentOutOfRangeException(nameof(Bias), Bias, $"LoraConfig.bias must be None, All or LoraOnly, got {(int)Bias}.");
        if (RankPattern is null || AlphaPattern is null)
            throw new ArgumentException("LoraConfig.rank_pattern and alpha_pattern must be objects ({} when unused), not null.", nameof(RankPattern));
        foreach (var (k, v) in RankPattern) AdapterLimits.Size(GetType().Name, $"rank_pattern[\"{k}\"]", v, AdapterLimits.MaxRank);
        foreach (var (k, v) in AlphaPattern) AdapterLimits.Alpha(GetType().Name, $"alpha_pattern[\"{k}\"]", v);
        foreach (var layer in LayersToTransform ?? [])
            if (layer is < 0 or >= AdapterLimits.MaxLayers)
                throw new ArgumentOutOfRangeException(nameof(LayersToTransform), layer, $"{GetType().Name}.layers_to_transform holds {layer}, outside [0, {AdapterLimits.MaxLayers}).");
        if (LayersPattern is { Count: > 0 } && LayersToTransform is null)
            throw new ArgumentException("LoraConfig.layers_pattern is only used with layers_to_transform.", nameof(LayersPattern));
        if (TargetModules is { Names: null } && (LayersToTransform is not null))
            throw new ArgumentException("LoraConfig.layers_to_transform cannot be used when target_modules is a regex string.", nameof(LayersToTransform));
        RequireDefault("lora_bias", IsNullOrEmpty, "a trainable bias on lora_B");
        RequireDefault("use_qalora", IsNullOrEmpty, "QALoRA");
        RequireDefault("layer_replication", IsNullOrEmpty, "layer replication");
        RequireDefault("target_parameters", IsNullOrEmpty, "LoRA on nn.Parameter targets");
        RequireDefault("trainable_token_indices", IsNullOrEmpty, "trainable tokens");
        RequireDefault("loftq_config", IsNullOrEmpty, "LoftQ initialisation");
        RequireDefault("alora_invocation_tokens", IsNullOrEmpty, "activated LoRA");
        RequireDefault("use_bdlora", IsNullOrEmpty, "BD-LoRA");
    }
}

/// <summary>HF <c>init_lora_weights</c>: <c>true</c>, <c>false</c> or <c>"gaussian"</c>. Converts from bool.</summary>
[JsonConverter(typeof(LoraInitJsonConverter))]
public readonly record struct LoraInit
{
    private LoraInit(string kind) => Kind = kind;

    /// <summary>"true", "false" or "gaussian".</summary>
    public string Kind { get; }

    /// <summary><c>true</c>: A Kaiming-uniform (a = √5), B zero (embeddings: A zero, B normal).</summary>
    public static LoraInit Default { get; } = new("true");

    /// <summary><c>"gaussian"</c>: A ~ N(0, 1/r), B zero.</summary>
    public static LoraInit Gaussian { get; } = new("gaussian");

    /// <summary><c>false</c>: A and B both random (the adapter changes the output from the start; for tests).</summary>
    public static LoraInit Random { get; } = new("false");

    /// <summary><c>true</c> → <see cref="Default"/>, <c>false</c> → <see cref="Random"/>.</summary>
    public static implicit operator LoraInit(bool value) => value ? Default : Random;

    /// <summary>Parses PEFT's JSON value; throws naming unsupported methods (pissa, olora, loftq, ...).</summary>
    public static LoraInit Parse(string value) => value switch
    {
        "true" or "True" => Default,
        "false" or "False" => Random,
        "gaussian" => Gaussian,
        _ => throw new NotSupportedException($"init_lora_weights \"{value}\" is not supported by Peft.NET (supported: true, false, \"gaussian\")."),
    };

    /// <inheritdoc />
    public override string ToString() => Kind;
}

/// <summary>JSON for <see cref="LoraInit"/>: true / false / "gaussian".</summary>
internal sealed class LoraInitJsonConverter : JsonConverter<LoraInit>
{
    /// <inheritdoc />
    public override LoraInit Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.True => LoraInit.Default,
        JsonTokenType.False => LoraInit.Random,
        JsonTokenType.String => LoraInit.Parse(reader.GetString()!),
        _ => throw new JsonException("init_lora_weights must be true, false or a string"),
    };

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, LoraInit value, JsonSerializerOptions options)
    {
        if (value == LoraInit.Default || value.Kind is null) writer.WriteBooleanValue(true);
        else if (value == LoraInit.Random) writer.WriteBooleanValue(false);
        else writer.WriteStringValue(value.Kind);
    }
}
