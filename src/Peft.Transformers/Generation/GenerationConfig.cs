using System.Text.Json;
using System.Text.Json.Serialization;

namespace Peft.Transformers;

/// <summary>
/// Decoding settings, named as Hugging Face's <c>GenerationConfig</c> (JSON keys as in <c>generation_config.json</c>).
/// A model carries the defaults read from its folder; a per-call config overrides them, except that null token ids
/// (<see cref="PadTokenId"/>, <see cref="EosTokenId"/>, <see cref="BosTokenId"/>) fall back to the model's.
/// </summary>
public sealed record GenerationConfig
{
    /// <summary>Number of tokens to generate after the prompt. HF <c>max_new_tokens</c>.</summary>
    [JsonPropertyName("max_new_tokens")] public int? MaxNewTokens { get; init; }

    /// <summary>Maximum total length (prompt + new). Used when <see cref="MaxNewTokens"/> is null. HF <c>max_length</c> (default 20).</summary>
    [JsonPropertyName("max_length")] public int? MaxLength { get; init; }

    /// <summary>Minimum number of new tokens before EOS may be produced. HF <c>min_new_tokens</c>.</summary>
    [JsonPropertyName("min_new_tokens")] public int? MinNewTokens { get; init; }

    /// <summary>Sample instead of greedy/beam decoding. HF <c>do_sample</c>.</summary>
    [JsonPropertyName("do_sample")] public bool DoSample { get; init; }

    /// <summary>Softmax temperature for sampling. HF <c>temperature</c> (default 1.0).</summary>
    [JsonPropertyName("temperature")] public double Temperature { get; init; } = 1.0;

    /// <summary>Keep the k most likely tokens when sampling (0 = off). HF <c>top_k</c> (default 50).</summary>
    [JsonPropertyName("top_k")] public int TopK { get; init; } = 50;

    /// <summary>Nucleus sampling mass (1.0 = off). HF <c>top_p</c>.</summary>
    [JsonPropertyName("top_p")] public double TopP { get; init; } = 1.0;

    /// <summary>Penalty for tokens already present (1.0 = off). HF <c>repetition_penalty</c>.</summary>
    [JsonPropertyName("repetition_penalty")] public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>Forbid repeating any n-gram of this size (0 = off). HF <c>no_repeat_ngram_size</c>.</summary>
    [JsonPropertyName("no_repeat_ngram_size")] public int NoRepeatNgramSize { get; init; }

    /// <summary>Beam count (1 = no beam search). HF <c>num_beams</c>.</summary>
    [JsonPropertyName("num_beams")] public int NumBeams { get; init; } = 1;

    /// <summary>Exponent of the length normalisation of beam scores. HF <c>length_penalty</c>.</summary>
    [JsonPropertyName("length_penalty")] public double LengthPenalty { get; init; } = 1.0;

    /// <summary>Stop beam search when <see cref="NumBeams"/> finished candidates exist. HF <c>early_stopping</c>.</summary>
    [JsonPropertyName("early_stopping")] public bool EarlyStopping { get; init; }

    /// <summary>Sequences returned per prompt. HF <c>num_return_sequences</c>.</summary>
    [JsonPropertyName("num_return_sequences")] public int NumReturnSequences { get; init; } = 1;

    /// <summary>End-of-sequence id; see <see cref="EosTokenIds"/> for several. HF <c>eos_token_id</c>.</summary>
    [JsonIgnore] public int? EosTokenId { get; init; }

    /// <summary>All end-of-sequence ids (HF accepts an int or a list). When set, it wins over <see cref="EosTokenId"/>.</summary>
    [JsonIgnore] public IReadOnlyList<int>? EosTokenIds { get; init; }

    /// <summary>Padding id, used to fill finished rows. HF <c>pad_token_id</c>.</summary>
    [JsonPropertyName("pad_token_id")] public int? PadTokenId { get; init; }

    /// <summary>Beginning-of-sequence id. HF <c>bos_token_id</c>.</summary>
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; }

    /// <summary>Seed of the sampling generator (null = nondeterministic).</summary>
    [JsonPropertyName("seed")] public long? Seed { get; init; }

    /// <summary>Keys of generation_config.json this record does not model; kept and written back.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? ExtensionData { get; init; }
}
