using System.Text.Json.Serialization;

namespace Peft.Transformers;

/// <summary>BERT config (HF <c>BertConfig</c>, <c>model_type</c> "bert"). Defaults are HF's (bert-base).</summary>
public sealed record BertConfig : PretrainedConfig
{
    /// <summary>Creates a config with HF's defaults.</summary>
    public BertConfig() { ModelType = "bert"; PadTokenId = 0; }

    /// <summary>HF <c>vocab_size</c>.</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 30522;
    /// <summary>HF <c>hidden_size</c>.</summary>
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 768;
    /// <summary>HF <c>num_hidden_layers</c>.</summary>
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 12;
    /// <summary>HF <c>num_attention_heads</c>.</summary>
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 12;
    /// <summary>HF <c>intermediate_size</c>.</summary>
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 3072;
    /// <summary>HF <c>hidden_act</c> ("gelu" = exact erf GELU).</summary>
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "gelu";
    /// <summary>HF <c>hidden_dropout_prob</c>.</summary>
    [JsonPropertyName("hidden_dropout_prob")] public double HiddenDropoutProb { get; init; } = 0.1;
    /// <summary>HF <c>attention_probs_dropout_prob</c>.</summary>
    [JsonPropertyName("attention_probs_dropout_prob")] public double AttentionProbsDropoutProb { get; init; } = 0.1;
    /// <summary>HF <c>max_position_embeddings</c>.</summary>
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 512;
    /// <summary>HF <c>type_vocab_size</c>.</summary>
    [JsonPropertyName("type_vocab_size")] public int TypeVocabSize { get; init; } = 2;
    /// <summary>HF <c>initializer_range</c>.</summary>
    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 0.02;
    /// <summary>HF <c>layer_norm_eps</c>.</summary>
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-12;
    /// <summary>HF <c>classifier_dropout</c> (null = <see cref="HiddenDropoutProb"/>).</summary>
    [JsonPropertyName("classifier_dropout")] public double? ClassifierDropout { get; init; }
    /// <summary>HF <c>is_decoder</c> (only false is supported).</summary>
    [JsonPropertyName("is_decoder")] public bool IsDecoder { get; init; }

    /// <inheritdoc />
    public override PretrainedConfig WithVocabSize(int vocabSize) => this with { VocabSize = vocabSize };
    /// <inheritdoc />
    [JsonIgnore] public override int HiddenSizeValue => HiddenSize;
    /// <inheritdoc />
    [JsonIgnore] public override double InitStd => InitializerRange;

    /// <inheritdoc />
    public override void Validate()
    {
        ConfigLimits.Check("bert", VocabSize, HiddenSize, NumHiddenLayers, NumAttentionHeads, IntermediateSize, MaxPositionEmbeddings);
        if (TypeVocabSize is <= 0 or > (int)ConfigLimits.MaxVocab) throw new ArgumentException($"bert: type_vocab_size {TypeVocabSize} is out of range.");
        if (HiddenSize % NumAttentionHeads != 0)
            throw new ArgumentException($"bert: hidden_size {HiddenSize} is not a multiple of num_attention_heads {NumAttentionHeads}.");
        if (IsDecoder) throw new NotSupportedException("bert: is_decoder=true is not supported.");
        if (ExtensionData is not null && ExtensionData.TryGetValue("position_embedding_type", out var p) && p.GetString() is { } pt && pt != "absolute")
            throw new NotSupportedException($"bert: position_embedding_type '{pt}' is not supported (only 'absolute').");
    }
}
