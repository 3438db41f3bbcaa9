using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// The P-tuning prompt encoder (PEFT <c>PromptEncoderReparameterizationType</c>). Written to <c>adapter_config.json</c>
/// as PEFT's strings: "MLP", "LSTM".
/// </summary>
[JsonConverter(typeof(PromptEncoderReparameterizationTypeJsonConverter))]
public enum PromptEncoderReparameterizationType
{
    /// <summary>"MLP": a three-layer MLP (PEFT's default).</summary>
    Mlp,
    /// <summary>"LSTM": a bidirectional LSTM followed by an MLP.</summary>
    Lstm,
}

/// <summary>Converts <see cref="PromptEncoderReparameterizationType"/> to and from PEFT's <c>encoder_reparameterization_type</c> strings.</summary>
internal sealed class PromptEncoderReparameterizationTypeJsonConverter() : HfNameJsonConverter<PromptEncoderReparameterizationType>(
    "encoder_reparameterization_type", (PromptEncoderReparameterizationType.Mlp, "MLP"), (PromptEncoderReparameterizationType.Lstm, "LSTM"));
