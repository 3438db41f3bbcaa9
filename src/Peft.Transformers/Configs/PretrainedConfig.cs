using System.Text.Json;
using System.Text.Json.Serialization;
using Peft.Core.IO;

namespace Peft.Transformers;

/// <summary>
/// The fields every Hugging Face model config shares (HF <c>PretrainedConfig</c>). Concrete configs
/// (<see cref="BertConfig"/>, <see cref="GPT2Config"/>, <see cref="OPTConfig"/>, <see cref="LlamaConfig"/>,
/// <see cref="Qwen2Config"/>) add their architecture's keys. JSON keys are HF's; keys no record models are kept in
/// <see cref="ExtensionData"/> and written back by <see cref="Save"/>.
/// </summary>
public abstract record PretrainedConfig
{
    /// <summary>HF <c>model_type</c> ("bert", "gpt2", "opt", "llama", "qwen2").</summary>
    [JsonPropertyName("model_type")] public string ModelType { get; init; } = "";

    /// <summary>HF <c>architectures</c>: the class names the checkpoint was saved from.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("architectures")] public List<string>? Architectures { get; init; }

    /// <summary>HF <c>id2label</c>: class index → label name for classification heads.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("id2label")] public Dictionary<int, string>? Id2Label { get; init; }

    /// <summary>HF <c>label2id</c>: label name → class index.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("label2id")] public Dictionary<string, int>? Label2Id { get; init; }

    /// <summary>HF <c>problem_type</c>: "regression", "single_label_classification" or "multi_label_classification" (null = inferred from labels).</summary>
    [JsonPropertyName("problem_type")] public string? ProblemType { get; init; }

    /// <summary>HF <c>pad_token_id</c>.</summary>
    [JsonPropertyName("pad_token_id")] public int? PadTokenId { get; init; }

    /// <summary>HF <c>bos_token_id</c>.</summary>
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; }

    /// <summary>HF <c>eos_token_id</c> (an int or a list in JSON; a one-element list is written as an int).</summary>
    [JsonPropertyName("eos_token_id"), JsonConverter(typeof(TokenIdListConverter))]
    public IReadOnlyList<int>? EosTokenId { get; init; }

    /// <summary>HF <c>tie_word_embeddings</c>: the output projection shares the input embedding matrix.</summary>
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; init; } = true;

    /// <summary>HF <c>use_cache</c>.</summary>
    [JsonPropertyName("use_cache")] public bool UseCache { get; init; } = true;

    /// <summary>HF <c>dtype</c> (older files: <c>torch_dtype</c>, kept in <see cref="ExtensionData"/>): the dtype the weights were saved in.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("dtype")] public string? Dtype { get; init; }

    /// <summary>HF <c>transformers_version</c> of the writer.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull), JsonPropertyName("transformers_version")] public string? TransformersVersion { get; init; }

    /// <summary>Keys of config.json that this record does not model; kept and written back.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? ExtensionData { get; init; }

    /// <summary>Where the config was loaded from (HF <c>name_or_path</c>); not written to JSON.</summary>
    [JsonIgnore] public string? NameOrPath { get; init; }

    /// <summary>Number of classification labels: the size of <see cref="Id2Label"/>, else HF's default of 2.</summary>
    [JsonIgnore] public int NumLabels => Id2Label?.Count ?? (ExtensionData is not null && ExtensionData.TryGetValue("num_labels", out var n) && n.ValueKind == JsonValueKind.Number ? n.GetInt32() : 2);

    /// <summary>The first <see cref="EosTokenId"/>, or null.</summary>
    [JsonIgnore] public int? FirstEosTokenId => EosTokenId is { Count: > 0 } e ? e[0] : null;

    /// <summary>Hidden size of the model (the width of its hidden states).</summary>
    [JsonIgnore] public abstract int HiddenSizeValue { get; }

    /// <summary>A copy with another <c>vocab_size</c> (used by <c>ResizeTokenEmbeddings</c>).</summary>
    public abstract PretrainedConfig WithVocabSize(int vocabSize);

    /// <summary>Standard deviation of the normal initialisation of new weights (HF <c>initializer_range</c> / <c>init_std</c>).</summary>
    [JsonIgnore] public abstract double InitStd { get; }

    /// <summary>
    /// A copy with <paramref name="numLabels"/> classes: keeps <see cref="Id2Label"/> when it already has that size,
    /// else uses HF's generic names LABEL_0.. (HF <c>num_labels=</c> argument of <c>from_pretrained</c>).
    /// </summary>
    public PretrainedConfig WithNumLabels(int numLabels, IReadOnlyDictionary<int, string>? id2Label = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numLabels, 1);
        var map = id2Label is not null
            ? id2Label.ToDictionary(kv => kv.Key, kv => kv.Value)
            : Id2Label is { } cur && cur.Count == numLabels ? Id2Label
            : Enumerable.Range(0, numLabels).ToDictionary(i => i, i => $"LABEL_{i}");
        if (map.Count != numLabels)
            throw new ArgumentException($"id2label has {map.Count} entries but num_labels is {numLabels}.", nameof(id2Label));
        return this with { Id2Label = map, Label2Id = map.ToDictionary(kv => kv.Value, kv => kv.Key) };
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the field and value when the config is inconsistent.</summary>
    public virtual void Validate()
    {
    }

    /// <summary>JSON options used to read and write config files (HF layout, two-space indent).</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>Serialises the config as HF's config.json text.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, GetType(), JsonOptions);

    /// <summary>Writes <c>config.json</c> into <paramref name="dir"/> (atomically). HF <c>save_pretrained</c>.</summary>
    public void Save(string dir)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, "config.json"), ToJson() + "\n");
    }
}

/// <summary>Reads a token id that HF writes as an int or a list of ints; writes a single id as an int.</summary>
public sealed class TokenIdListConverter : JsonConverter<IReadOnlyList<int>?>
{
    /// <inheritdoc />
    public override bool HandleNull => true;

    /// <inheritdoc />
    public override IReadOnlyList<int>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null: return null;
            case JsonTokenType.Number: return [reader.GetInt32()];
            case JsonTokenType.StartArray:
                var list = new List<int>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.Number) throw new JsonException($"token id list holds a {reader.TokenType}, expected numbers");
                    list.Add(reader.GetInt32());
                }
                return list;
            default: throw new JsonException($"token id must be an int, a list of ints or null, got {reader.TokenType}");
        }
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, IReadOnlyList<int>? value, JsonSerializerOptions options)
    {
        if (value is null) writer.WriteNullValue();
        else if (value.Count == 1) writer.WriteNumberValue(value[0]);
        else
        {
            writer.WriteStartArray();
            foreach (var v in value) writer.WriteNumberValue(v);
            writer.WriteEndArray();
        }
    }
}
