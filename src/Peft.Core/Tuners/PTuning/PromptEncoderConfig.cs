using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// P-tuning v1 (PEFT <c>PromptEncoderConfig</c>, Liu et al. 2021): virtual-token embeddings reparameterised by a
/// prompt encoder (an MLP, or a bidirectional LSTM followed by an MLP) while training; the encoder's output is what is
/// saved (<c>prompt_embeddings</c>) and prepended to the input embeddings.
/// </summary>
public sealed record PromptEncoderConfig : PromptLearningConfig
{
    /// <inheritdoc />
    [JsonIgnore]
    public override string PeftType => "P_TUNING";

    /// <summary>HF <c>encoder_reparameterization_type</c>: <see cref="PromptEncoderReparameterizationType.Mlp"/> (default) or <see cref="PromptEncoderReparameterizationType.Lstm"/>.</summary>
    [JsonPropertyName("encoder_reparameterization_type")]
    public PromptEncoderReparameterizationType EncoderReparameterizationType { get; init; } = PromptEncoderReparameterizationType.Mlp;

    /// <summary>HF <c>encoder_hidden_size</c>: the prompt encoder's hidden width (null = token_dim).</summary>
    [JsonPropertyName("encoder_hidden_size")]
    public int? EncoderHiddenSize { get; init; }

    /// <summary>HF <c>encoder_num_layers</c>: LSTM layers (default 2; the MLP always has 3 linear layers and PEFT warns otherwise).</summary>
    [JsonPropertyName("encoder_num_layers")]
    public int EncoderNumLayers { get; init; } = 2;

    /// <summary>HF <c>encoder_dropout</c>: dropout between LSTM layers (default 0).</summary>
    [JsonPropertyName("encoder_dropout")]
    public double EncoderDropout { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (!Enum.IsDefined(EncoderReparameterizationType))
            throw new ArgumentOutOfRangeException(nameof(EncoderReparameterizationType), EncoderReparameterizationType, $"P_TUNING config: encoder_reparameterization_type must be Mlp or Lstm, got {(int)EncoderReparameterizationType}.");
        CheckPositive(EncoderHiddenSize, "encoder_hidden_size");
        AdapterLimits.Size("P_TUNING config", "encoder_num_layers", EncoderNumLayers, AdapterLimits.MaxLayers);
        if (EncoderHiddenSize is { } e)
        {
            AdapterLimits.Size("P_TUNING config", "encoder_hidden_size", e, AdapterLimits.MaxDim);
            AdapterLimits.Elements("P_TUNING config", "the prompt encoder's weight", e, TokenDim ?? 1);
        }
        if (EncoderDropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(EncoderDropout), EncoderDropout, $"P_TUNING config: encoder_dropout must be in [0, 1), got {EncoderDropout}.");
    }

    /// <inheritdoc />
    public override PromptLearningConfig WithModelDimensions(TransformerDimensions dimensions)
    {
        var filled = (PromptEncoderConfig)base.WithModelDimensions(dimensions);
        return filled with { EncoderHiddenSize = EncoderHiddenSize ?? filled.TokenDim };
    }
}
