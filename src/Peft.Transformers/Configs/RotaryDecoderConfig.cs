using System.Text.Json;
using System.Text.Json.Serialization;

namespace Peft.Transformers;

/// <summary>
/// RoPE settings (HF <c>rope_parameters</c> in transformers 5, <c>rope_scaling</c> + <c>rope_theta</c> before).
/// Supported <c>rope_type</c>s: "default", "linear", "llama3".
/// </summary>
public sealed record RopeParameters
{
    /// <summary>HF <c>rope_type</c> ("default", "linear", "llama3", ...).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("rope_type")] public string? RopeType { get; init; }
    /// <summary>Legacy spelling of <see cref="RopeType"/> (<c>type</c>).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("type")] public string? LegacyType { get; init; }
    /// <summary>HF <c>rope_theta</c> (base of the frequencies).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("rope_theta")] public double? RopeTheta { get; init; }
    /// <summary>HF <c>factor</c> (linear / llama3 scaling factor).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("factor")] public double? Factor { get; init; }
    /// <summary>HF <c>low_freq_factor</c> (llama3).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("low_freq_factor")] public double? LowFreqFactor { get; init; }
    /// <summary>HF <c>high_freq_factor</c> (llama3).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("high_freq_factor")] public double? HighFreqFactor { get; init; }
    /// <summary>HF <c>original_max_position_embeddings</c> (llama3).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("original_max_position_embeddings")] public int? OriginalMaxPositionEmbeddings { get; init; }
    /// <summary>HF <c>partial_rotary_factor</c> (fraction of the head dimension that is rotated).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("partial_rotary_factor")] public double? PartialRotaryFactor { get; init; }
    /// <summary>Other keys, kept and written back.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? ExtensionData { get; init; }

    /// <summary>The effective type ("default" when neither spelling is set).</summary>
    [JsonIgnore] public string Type => RopeType ?? LegacyType ?? "default";
}

/// <summary>
/// Shared fields of the RoPE decoder family (Llama, Qwen2): RMSNorm, rotary positions, grouped-query attention,
/// SwiGLU MLP. HF <c>LlamaConfig</c> / <c>Qwen2Config</c>.
/// </summary>
public abstract record RotaryDecoderConfig : PretrainedConfig
{
    /// <summary>HF <c>vocab_size</c>.</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 32000;
    /// <summary>HF <c>hidden_size</c>.</summary>
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 4096;
    /// <summary>HF <c>intermediate_size</c>.</summary>
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 11008;
    /// <summary>HF <c>num_hidden_layers</c>.</summary>
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 32;
    /// <summary>HF <c>num_attention_heads</c>.</summary>
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 32;
    /// <summary>HF <c>num_key_value_heads</c> (null = num_attention_heads, i.e. no GQA).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("num_key_value_heads")] public int? NumKeyValueHeads { get; init; }
    /// <summary>HF <c>head_dim</c> (null = hidden_size / num_attention_heads).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("head_dim")] public int? HeadDimValue { get; init; }
    /// <summary>HF <c>hidden_act</c> of the gated MLP ("silu").</summary>
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "silu";
    /// <summary>HF <c>max_position_embeddings</c>.</summary>
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 2048;
    /// <summary>HF <c>initializer_range</c>.</summary>
    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 0.02;
    /// <summary>HF <c>rms_norm_eps</c>.</summary>
    [JsonPropertyName("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-6;
    /// <summary>HF <c>rope_theta</c> (transformers 4 files; 5 puts it in <see cref="RopeParameters"/>).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("rope_theta")] public double? RopeTheta { get; init; }
    /// <summary>HF <c>rope_scaling</c> (transformers 4 files).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("rope_scaling")] public RopeParameters? RopeScaling { get; init; }
    /// <summary>HF <c>rope_parameters</c> (transformers 5 files).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("rope_parameters")] public RopeParameters? RopeParameters { get; init; }
    /// <summary>HF <c>attention_dropout</c>.</summary>
    [JsonPropertyName("attention_dropout")] public double AttentionDropout { get; init; }

    /// <summary>Default RoPE base of this family when no file says otherwise.</summary>
    [JsonIgnore] protected virtual double DefaultRopeTheta => 10000.0;
    /// <summary>Key-value head count (GQA).</summary>
    [JsonIgnore] public int KeyValueHeads => NumKeyValueHeads ?? NumAttentionHeads;
    /// <summary>Per-head size.</summary>
    [JsonIgnore] public int HeadDim => HeadDimValue ?? HiddenSize / NumAttentionHeads;
    /// <summary>The RoPE base in effect.</summary>
    [JsonIgnore] public double EffectiveRopeTheta => RopeParameters?.RopeTheta ?? RopeTheta ?? DefaultRopeTheta;
    /// <summary>The RoPE scaling in effect (rope_parameters, else rope_scaling; null = none).</summary>
    [JsonIgnore] public RopeParameters? EffectiveRopeScaling => RopeParameters ?? RopeScaling;
    /// <summary>Whether q/k/v projections carry biases.</summary>
    [JsonIgnore] public abstract bool QkvBias { get; }
    /// <summary>Whether o_proj carries a bias.</summary>
    [JsonIgnore] public abstract bool OutputBias { get; }
    /// <summary>Whether the MLP projections carry biases.</summary>
    [JsonIgnore] public abstract bool MlpBiasValue { get; }
    /// <inheritdoc />
    public override PretrainedConfig WithVocabSize(int vocabSize) => this with { VocabSize = vocabSize };
    /// <inheritdoc />
    [JsonIgnore] public override int HiddenSizeValue => HiddenSize;
    /// <inheritdoc />
    [JsonIgnore] public override double InitStd => InitializerRange;

    /// <summary>Sliding-window size of layer <paramref name="layer"/> (keys older than this many positions are masked), or null for full attention.</summary>
    public virtual int? SlidingWindowOf(int layer) => null;

    /// <inheritdoc />
    public override void Validate()
    {
        ConfigLimits.Check(ModelType, VocabSize, HiddenSize, NumHiddenLayers, NumAttentionHeads, IntermediateSize, 1);
        if (MaxPositionEmbeddings is <= 0 or > (int)ConfigLimits.MaxVocab) throw new ArgumentException($"{ModelType}: max_position_embeddings {MaxPositionEmbeddings} is out of range (1..{ConfigLimits.MaxVocab}).");
        if (KeyValueHeads is <= 0 or > (int)ConfigLimits.MaxDim) throw new ArgumentException($"{ModelType}: num_key_value_heads {KeyValueHeads} is out of range.");
        if (HeadDimValue is <= 0 or > (int)ConfigLimits.MaxDim) throw new ArgumentException($"{ModelType}: head_dim {HeadDimValue} is out of range.");
        if (HeadDimValue is null && HiddenSize % NumAttentionHeads != 0)
            throw new ArgumentException($"{ModelType}: hidden_size {HiddenSize} is not a multiple of num_attention_heads {NumAttentionHeads}.");
        if (NumAttentionHeads % KeyValueHeads != 0)
            throw new ArgumentException($"{ModelType}: num_attention_heads {NumAttentionHeads} is not a multiple of num_key_value_heads {KeyValueHeads}.");
        var t = EffectiveRopeScaling?.Type ?? "default";
        if (t is not ("default" or "linear" or "llama3"))
            throw new NotSupportedException($"{ModelType}: rope_type '{t}' is not supported (default, linear, llama3).");
    }
}

/// <summary>Llama config (HF <c>LlamaConfig</c>, <c>model_type</c> "llama"). Defaults are HF's (Llama-2-7B shape).</summary>
public sealed record LlamaConfig : RotaryDecoderConfig
{
    /// <summary>Creates a config with HF's defaults.</summary>
    public LlamaConfig() { ModelType = "llama"; BosTokenId = 1; EosTokenId = [2]; TieWordEmbeddings = false; }

    /// <summary>HF <c>attention_bias</c>: biases on q/k/v/o.</summary>
    [JsonPropertyName("attention_bias")] public bool AttentionBias { get; init; }
    /// <summary>HF <c>mlp_bias</c>.</summary>
    [JsonPropertyName("mlp_bias")] public bool MlpBias { get; init; }
    /// <summary>HF <c>pretraining_tp</c> (must be 1 for exact results; ignored otherwise as HF does in inference).</summary>
    [JsonPropertyName("pretraining_tp")] public int PretrainingTp { get; init; } = 1;

    /// <inheritdoc />
    [JsonIgnore] public override bool QkvBias => AttentionBias;
    /// <inheritdoc />
    [JsonIgnore] public override bool OutputBias => AttentionBias;
    /// <inheritdoc />
    [JsonIgnore] public override bool MlpBiasValue => MlpBias;
}

/// <summary>Qwen2 config (HF <c>Qwen2Config</c>, <c>model_type</c> "qwen2"): the Llama layout with q/k/v biases.</summary>
public sealed record Qwen2Config : RotaryDecoderConfig
{
    /// <summary>Creates a config with HF's defaults.</summary>
    public Qwen2Config()
    {
        ModelType = "qwen2"; VocabSize = 151936; IntermediateSize = 22016; MaxPositionEmbeddings = 32768; TieWordEmbeddings = false;
    }

    /// <summary>HF <c>use_sliding_window</c> (only false is supported).</summary>
    [JsonPropertyName("use_sliding_window")] public bool UseSlidingWindow { get; init; }
    /// <summary>HF <c>sliding_window</c>.</summary>
    [JsonPropertyName("sliding_window")] public int? SlidingWindow { get; init; }
    /// <summary>HF <c>max_window_layers</c>.</summary>
    [JsonPropertyName("max_window_layers")] public int MaxWindowLayers { get; init; } = 28;
    /// <summary>HF <c>layer_types</c> ("full_attention" / "sliding_attention" per layer).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("layer_types")] public List<string>? LayerTypes { get; init; }

    /// <inheritdoc />
    [JsonIgnore] protected override double DefaultRopeTheta => 10000.0;
    /// <inheritdoc />
    [JsonIgnore] public override bool QkvBias => true;
    /// <inheritdoc />
    [JsonIgnore] public override bool OutputBias => false;
    /// <inheritdoc />
    [JsonIgnore] public override bool MlpBiasValue => false;

    /// <summary>
    /// HF: the window applies when use_sliding_window and sliding_window are set, to the layers whose
    /// <c>layer_types</c> entry is "sliding_attention" (default: layers at index ≥ max_window_layers).
    /// </summary>
    public override int? SlidingWindowOf(int layer)
    {
        if (!UseSlidingWindow || SlidingWindow is null) return null;
        var type = LayerTypes is { } t && layer < t.Count ? t[layer] : layer >= MaxWindowLayers ? "sliding_attention" : "full_attention";
        return type == "sliding_attention" ? SlidingWindow : null;
    }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (LayerTypes is not null && LayerTypes.Count != NumHiddenLayers)
            throw new ArgumentException($"qwen2: layer_types has {LayerTypes.Count} entries but num_hidden_layers is {NumHiddenLayers}.");
    }
}

/// <summary>Mistral config (HF <c>MistralConfig</c>, <c>model_type</c> "mistral"): the Llama layout with sliding-window attention.</summary>
public sealed record MistralConfig : RotaryDecoderConfig
{
    /// <summary>Creates a config with HF's defaults (Mistral-7B shape).</summary>
    public MistralConfig()
    {
        ModelType = "mistral"; IntermediateSize = 14336; NumKeyValueHeads = 8; MaxPositionEmbeddings = 4096 * 32; BosTokenId = 1; EosTokenId = [2];
        TieWordEmbeddings = false; RmsNormEps = 1e-6;
    }

    /// <summary>HF <c>sliding_window</c> (null = full attention).</summary>
    [JsonPropertyName("sliding_window")] public int? SlidingWindow { get; init; } = 4096;

    /// <inheritdoc />
    [JsonIgnore] public override bool QkvBias => false;
    /// <inheritdoc />
    [JsonIgnore] public override bool OutputBias => false;
    /// <inheritdoc />
    [JsonIgnore] public override bool MlpBiasValue => false;

    /// <inheritdoc />
    public override int? SlidingWindowOf(int layer) => SlidingWindow;
}
