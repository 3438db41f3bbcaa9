using System.Text.Json.Serialization;

namespace Peft.Transformers;

/// <summary>OPT config (HF <c>OPTConfig</c>, <c>model_type</c> "opt"). Defaults are HF's (opt-350m shape).</summary>
public sealed record OPTConfig : PretrainedConfig
{
    /// <summary>Creates a config with HF's defaults.</summary>
    public OPTConfig() { ModelType = "opt"; PadTokenId = 1; BosTokenId = 2; EosTokenId = [2]; }

    /// <summary>HF <c>vocab_size</c>.</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 50272;
    /// <summary>HF <c>hidden_size</c>.</summary>
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 768;
    /// <summary>HF <c>num_hidden_layers</c>.</summary>
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 12;
    /// <summary>HF <c>ffn_dim</c>.</summary>
    [JsonPropertyName("ffn_dim")] public int FfnDim { get; init; } = 3072;
    /// <summary>HF <c>max_position_embeddings</c> (the table has 2 extra rows: OPT's position offset).</summary>
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 2048;
    /// <summary>HF <c>do_layer_norm_before</c> (pre-norm when true; opt-350m is post-norm).</summary>
    [JsonPropertyName("do_layer_norm_before")] public bool DoLayerNormBefore { get; init; } = true;
    /// <summary>HF <c>_remove_final_layer_norm</c>.</summary>
    [JsonPropertyName("_remove_final_layer_norm")] public bool RemoveFinalLayerNorm { get; init; }
    /// <summary>HF <c>word_embed_proj_dim</c> (null = hidden_size); when different, project_in/out are added.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("word_embed_proj_dim")] public int? WordEmbedProjDim { get; init; }
    /// <summary>HF <c>dropout</c>.</summary>
    [JsonPropertyName("dropout")] public double Dropout { get; init; } = 0.1;
    /// <summary>HF <c>attention_dropout</c>.</summary>
    [JsonPropertyName("attention_dropout")] public double AttentionDropout { get; init; }
    /// <summary>HF <c>num_attention_heads</c>.</summary>
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 12;
    /// <summary>HF <c>activation_function</c>.</summary>
    [JsonPropertyName("activation_function")] public string ActivationFunction { get; init; } = "relu";
    /// <summary>HF <c>layerdrop</c> (training only; ignored).</summary>
    [JsonPropertyName("layerdrop")] public double LayerDrop { get; init; }
    /// <summary>HF <c>init_std</c>.</summary>
    [JsonPropertyName("init_std")] public double InitStdValue { get; init; } = 0.02;
    /// <summary>HF <c>enable_bias</c>: biases on the attention and MLP projections.</summary>
    [JsonPropertyName("enable_bias")] public bool EnableBias { get; init; } = true;
    /// <summary>HF <c>layer_norm_elementwise_affine</c>.</summary>
    [JsonPropertyName("layer_norm_elementwise_affine")] public bool LayerNormElementwiseAffine { get; init; } = true;

    /// <summary>The embedding width actually used (<see cref="WordEmbedProjDim"/> or <see cref="HiddenSize"/>).</summary>
    [JsonIgnore] public int EmbedDim => WordEmbedProjDim ?? HiddenSize;
    /// <inheritdoc />
    public override PretrainedConfig WithVocabSize(int vocabSize) => this with { VocabSize = vocabSize };
    /// <inheritdoc />
    [JsonIgnore] public override int HiddenSizeValue => HiddenSize;
    /// <inheritdoc />
    [JsonIgnore] public override double InitStd => InitStdValue;

    /// <inheritdoc />
    public override void Validate()
    {
        ConfigLimits.Check("opt", VocabSize, HiddenSize, NumHiddenLayers, NumAttentionHeads, FfnDim, MaxPositionEmbeddings + 2L);
        if (WordEmbedProjDim is <= 0 or > (int)ConfigLimits.MaxDim) throw new ArgumentException($"opt: word_embed_proj_dim {WordEmbedProjDim} is out of range.");
        if (HiddenSize % NumAttentionHeads != 0)
            throw new ArgumentException($"opt: hidden_size {HiddenSize} is not a multiple of num_attention_heads {NumAttentionHeads}.");
    }
}
