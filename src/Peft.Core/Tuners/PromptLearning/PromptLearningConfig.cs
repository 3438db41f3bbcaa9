using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// Settings shared by the prompt-learning methods (PEFT <c>PromptLearningConfig</c>): prompt tuning, P-tuning and
/// prefix tuning. The model-dependent sizes (<see cref="TokenDim"/>, <see cref="NumLayers"/>,
/// <see cref="NumAttentionHeads"/>, <see cref="NumTransformerSubmodules"/>) may be left null: adding the adapter fills
/// them from the model as PEFT's <c>_prepare_prompt_learning_config</c> does (<see cref="WithModelDimensions"/>).
/// </summary>
public abstract record PromptLearningConfig : PeftConfig
{
    /// <summary>HF <c>num_virtual_tokens</c>: the number of virtual tokens (prompt length or prefix length). Must be &gt; 0.</summary>
    [JsonPropertyName("num_virtual_tokens")]
    public int NumVirtualTokens { get; init; }

    /// <summary>HF <c>token_dim</c>: the width of one virtual token (hidden size; for prefix tuning on a GQA model, head_dim × num_key_value_heads).</summary>
    [JsonPropertyName("token_dim")]
    public int? TokenDim { get; init; }

    /// <summary>HF <c>num_transformer_submodules</c>: 1 for decoder-only / encoder-only models (2 = encoder-decoder, not supported here).</summary>
    [JsonPropertyName("num_transformer_submodules")]
    public int? NumTransformerSubmodules { get; init; }

    /// <summary>HF <c>num_attention_heads</c> (for prefix tuning on a GQA model: the key/value head count).</summary>
    [JsonPropertyName("num_attention_heads")]
    public int? NumAttentionHeads { get; init; }

    /// <summary>HF <c>num_layers</c>: the number of transformer layers.</summary>
    [JsonPropertyName("num_layers")]
    public int? NumLayers { get; init; }

    /// <summary>HF <c>modules_to_save</c>: modules trained in full and saved with the adapter (classifier heads for SEQ_CLS).</summary>
    [JsonPropertyName("modules_to_save")]
    [JsonConverter(typeof(StringOrListJsonConverter))]
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    /// <inheritdoc />
    [JsonIgnore]
    public override bool IsPromptLearning => true;

    /// <inheritdoc />
    [JsonIgnore]
    public override IReadOnlyList<string>? ModulesToSaveNames => ModulesToSave;

    /// <inheritdoc />
    public override PeftConfig WithModulesToSave(IReadOnlyList<string> modules) => this with { ModulesToSave = modules };

    /// <inheritdoc />
    protected override IReadOnlyDictionary<string, JsonNode?> PeftDefaults { get; } = new Dictionary<string, JsonNode?> { ["auto_mapping"] = null };

    /// <summary>The total number of virtual tokens (PEFT <c>num_virtual_tokens * num_transformer_submodules</c>).</summary>
    [JsonIgnore]
    public int TotalVirtualTokens => NumVirtualTokens * (NumTransformerSubmodules ?? 1);

    /// <summary>The filled-in token width; throws when the config was not prepared for a model.</summary>
    [JsonIgnore]
    public int RequiredTokenDim => TokenDim ?? throw new InvalidOperationException($"{PeftType}: token_dim is not set (add the adapter to a model first).");

    /// <inheritdoc />
    public override void Validate()
    {
        string owner = $"{PeftType} config";
        AdapterLimits.Size(owner, "num_virtual_tokens", NumVirtualTokens, AdapterLimits.MaxVirtualTokens);
        CheckPositive(TokenDim, "token_dim");
        CheckPositive(NumAttentionHeads, "num_attention_heads");
        CheckPositive(NumLayers, "num_layers");
        if (TokenDim is { } d) AdapterLimits.Size(owner, "token_dim", d, AdapterLimits.MaxDim);
        if (NumAttentionHeads is { } h) AdapterLimits.Size(owner, "num_attention_heads", h, AdapterLimits.MaxDim);
        if (NumLayers is { } l) AdapterLimits.Size(owner, "num_layers", l, AdapterLimits.MaxLayers);
        AdapterLimits.Elements(owner, "the prompt table", (long)NumVirtualTokens * (NumTransformerSubmodules ?? 1), TokenDim ?? 1);
        if (NumTransformerSubmodules is { } s && s != 1)
            throw new NotSupportedException($"{PeftType} config: num_transformer_submodules = {s} (encoder-decoder models) is not supported by Peft.NET; use 1.");
        if (TaskType is { } t && t is not (Core.TaskType.CausalLM or Core.TaskType.SeqCls))
            throw new NotSupportedException($"{PeftType} config: task_type {TaskTypeJsonConverter.ToPeftName(t)} is not supported for prompt learning (CAUSAL_LM, SEQ_CLS).");
    }

    /// <summary>Throws naming <paramref name="key"/> when <paramref name="value"/> is set and not positive.</summary>
    protected void CheckPositive(int? value, string key)
    {
        if (value is { } v && v <= 0) throw new ArgumentOutOfRangeException(key, v, $"{PeftType} config: {key} must be > 0, got {v}.");
    }

    /// <summary>
    /// The config with the sizes PEFT reads from the model config filled in where null (PEFT
    /// <c>_prepare_prompt_learning_config</c> and <c>_setup_prompt_encoder</c>): num_layers, token_dim = hidden_size,
    /// num_attention_heads, num_transformer_submodules = 1. Methods add their own rules (prefix tuning: GQA head counts,
    /// encoder_hidden_size).
    /// </summary>
    public virtual PromptLearningConfig WithModelDimensions(TransformerDimensions dimensions)
    {
        ArgumentNullException.ThrowIfNull(dimensions);
        return this with
        {
            NumLayers = NumLayers ?? dimensions.NumLayers,
            TokenDim = TokenDim ?? dimensions.HiddenSize,
            NumAttentionHeads = NumAttentionHeads ?? dimensions.NumAttentionHeads,
            NumTransformerSubmodules = NumTransformerSubmodules ?? 1,
        };
    }
}
