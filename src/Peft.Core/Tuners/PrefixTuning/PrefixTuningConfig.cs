using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// Prefix tuning / P-tuning v2 (PEFT <c>PrefixTuningConfig</c>, Li &amp; Liang 2021): per-layer key and value prefixes of
/// <see cref="PromptLearningConfig.NumVirtualTokens"/> positions, given to the model as an already filled KV cache. With
/// <see cref="PrefixProjection"/> the prefixes are produced while training by a two-layer MLP (Linear → tanh → Linear)
/// from virtual-token embeddings; the saved <c>prompt_embeddings</c> is always the flattened prefix
/// [num_virtual_tokens, num_layers · 2 · token_dim].
/// </summary>
public sealed record PrefixTuningConfig : PromptLearningConfig
{
    /// <inheritdoc />
    [JsonIgnore]
    public override string PeftType => "PREFIX_TUNING";

    /// <summary>HF <c>encoder_hidden_size</c>: hidden width of the projection MLP (null = token_dim).</summary>
    [JsonPropertyName("encoder_hidden_size")]
    public int? EncoderHiddenSize { get; init; }

    /// <summary>HF <c>prefix_projection</c>: reparameterise the prefix through the MLP while training (default false).</summary>
    [JsonPropertyName("prefix_projection")]
    public bool PrefixProjection { get; init; }

    /// <summary>HF <c>init_weights</c>: null (random, N(0, 1)) or "zero" (zero prefix; with projection, a zero last linear layer).</summary>
    [JsonPropertyName("init_weights")]
    public string? InitWeights { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        CheckPositive(EncoderHiddenSize, "encoder_hidden_size");
        AdapterLimits.Elements("PREFIX_TUNING config", "the prefix table", NumVirtualTokens, 2L * (NumLayers ?? 1), TokenDim ?? 1);
        if (EncoderHiddenSize is { } e)
        {
            AdapterLimits.Size("PREFIX_TUNING config", "encoder_hidden_size", e, AdapterLimits.MaxDim);
            AdapterLimits.Elements("PREFIX_TUNING config", "the prefix projection's weight", e, 2L * (NumLayers ?? 1), TokenDim ?? 1);
        }
        if (InitWeights is not (null or "zero"))
            throw new ArgumentException($"PREFIX_TUNING config: init_weights must be null or \"zero\", got \"{InitWeights}\".", nameof(InitWeights));
        if (TokenDim is { } d && NumAttentionHeads is { } h && d % h != 0)
            throw new ArgumentException($"PREFIX_TUNING config: token_dim {d} is not divisible by num_attention_heads {h}.", nameof(TokenDim));
    }

    /// <summary>
    /// Fills the sizes as PEFT does, including its grouped-query-attention rule (peft#1901): the prefix is one key/value
    /// head set, so token_dim = head_dim × num_key_value_heads and num_attention_heads = num_key_value_heads (a model
    /// without GQA gives the same numbers as before); encoder_hidden_size defaults to the resulting token_dim.
    /// </summary>
    public override PromptLearningConfig WithModelDimensions(TransformerDimensions dimensions)
    {
        var filled = (PrefixTuningConfig)base.WithModelDimensions(dimensions);
        filled = filled with
        {
            TokenDim = dimensions.HeadDim * dimensions.NumKeyValueHeads,
            NumAttentionHeads = dimensions.NumKeyValueHeads,
        };
        return filled with { EncoderHiddenSize = EncoderHiddenSize ?? filled.TokenDim };
    }
}
