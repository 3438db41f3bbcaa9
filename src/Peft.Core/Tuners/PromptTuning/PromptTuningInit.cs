using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// How prompt tuning initialises its virtual tokens (PEFT <c>PromptTuningInit</c>). Written to
/// <c>adapter_config.json</c> as PEFT's strings: "RANDOM", "TEXT", "SAMPLE_VOCAB".
/// </summary>
[JsonConverter(typeof(PromptTuningInitJsonConverter))]
public enum PromptTuningInit
{
    /// <summary>"RANDOM": N(0, 1) as <c>nn.Embedding</c> initialises (PEFT's default).</summary>
    Random,
    /// <summary>"TEXT": the word embeddings of the tokenized init text, repeated or cut to the virtual token count.</summary>
    Text,
    /// <summary>"SAMPLE_VOCAB": the word embeddings of uniformly drawn vocabulary ids.</summary>
    SampleVocab,
}

/// <summary>Converts <see cref="PromptTuningInit"/> to and from PEFT's <c>prompt_tuning_init</c> strings.</summary>
internal sealed class PromptTuningInitJsonConverter() : HfNameJsonConverter<PromptTuningInit>(
    "prompt_tuning_init", (PromptTuningInit.Text, "TEXT"), (PromptTuningInit.SampleVocab, "SAMPLE_VOCAB"), (PromptTuningInit.Random, "RANDOM"));
