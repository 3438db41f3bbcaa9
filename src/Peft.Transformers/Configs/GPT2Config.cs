using System.Text.Json.Serialization;

namespace Peft.Transformers;

/// <summary>GPT-2 config (HF <c>GPT2Config</c>, <c>model_type</c> "gpt2"). Defaults are HF's (gpt2 small).</summary>
public sealed record GPT2Config : PretrainedConfig
{
    /// <summary>Creates a config with HF's defaults.</summary>
    public GPT2Config() { ModelType = "gpt2"; BosTokenId = 50256; EosTokenId = [50256]; }

    /// <summary>HF <c>vocab_size</c>.</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 50257;
    /// <summary>HF <c>n_positions</c>.</summary>
    [JsonPropertyName("n_positions")] public int NPositions { get; init; } = 1024;
    /// <summary>HF <c>n_embd</c> (hidden size).</summary>
    [JsonPropertyName("n_embd")] public int NEmbd { get; init; } = 768;
    /// <summary>HF <c>n_layer</c>.</summary>
    [JsonPropertyName("n_layer")] public int NLayer { get; init; } = 12;
    /// <summary>HF <c>n_head</c>.</summary>
    [JsonPropertyName("n_head")] public int NHead { get; init; } = 12;
    /// <summary>HF <c>n_inner</c> (null = 4 · n_embd).</summary>
    [JsonPropertyName("n_inner")] public int? NInner { get; init; }
    /// <summary>HF <c>activation_function</c> ("gelu_new" = tanh approximation).</summary>
    [JsonPropertyName("activation_function")] public string ActivationFunction { get; init; } = "gelu_new";
    /// <summary>HF <c>resid_pdrop</c>.</summary>
    [JsonPropertyName("resid_pdrop")] public double ResidPdrop { get; init; } = 0.1;
    /// <summary>HF <c>embd_pdrop</c>.</summary>
    [JsonPropertyName("embd_pdrop")] public double EmbdPdrop { get; init; } = 0.1;
    /// <summary>HF <c>attn_pdrop</c>.</summary>
    [JsonPropertyName("attn_pdrop")] public double AttnPdrop { get; init; } = 0.1;
    /// <summary>HF <c>layer_norm_epsilon</c>.</summary>
    [JsonPropertyName("layer_norm_epsilon")] public double LayerNormEpsilon { get; init; } = 1e-5;
    /// <summary>HF <c>initializer_range</c>.</summary>
    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 0.02;
    /// <summary>HF <c>scale_attn_weights</c>: divide scores by √head_dim.</summary>
    [JsonPropertyName("scale_attn_weights")] public bool ScaleAttnWeights { get; init; } = true;
    /// <summary>HF <c>scale_attn_by_inverse_layer_idx</c>: also divide scores by layer_idx + 1.</summary>
    [JsonPropertyName("scale_attn_by_inverse_layer_idx")] public bool ScaleAttnByInverseLayerIdx { get; init; }
    /// <summary>HF <c>reorder_and_upcast_attn</c> (numerically the same in float32).</summary>
    [JsonPropertyName("reorder_and_upcast_attn")] public bool ReorderAndUpcastAttn { get; init; }

    /// <inheritdoc />
    public override PretrainedConfig WithVocabSize(int vocabSize) => this with { VocabSize = vocabSize };
    /// <inheritdoc />
    [JsonIgnore] public override int HiddenSizeValue => NEmbd;
    /// <inheritdoc />
    [JsonIgnore] public override double InitStd => InitializerRange;

    /// <inheritdoc />
    public override void Validate()
    {
        ConfigLimits.Check("gpt2", VocabSize, NEmbd, NLayer, NHead, NInner ?? 4L * NEmbd, NPositions);
        if (NEmbd % NHead != 0) throw new ArgumentException($"gpt2: n_embd {NEmbd} is not a multiple of n_head {NHead}.");
    }
}
