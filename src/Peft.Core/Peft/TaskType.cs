using System.Text.Json;
using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// What the adapted model is used for (PEFT <c>TaskType</c>). Decides which <see cref="PeftModel"/> behaviour applies,
/// e.g. sequence and token classification add the classifier head (<c>classifier</c>, <c>score</c>) to
/// <c>modules_to_save</c>. Written to <c>adapter_config.json</c> as PEFT's upper-case names ("CAUSAL_LM", ...).
/// </summary>
[JsonConverter(typeof(TaskTypeJsonConverter))]
public enum TaskType
{
    /// <summary>"CAUSAL_LM": causal language modelling.</summary>
    CausalLM,
    /// <summary>"SEQ_CLS": sequence classification.</summary>
    SeqCls,
    /// <summary>"TOKEN_CLS": token classification.</summary>
    TokenCls,
    /// <summary>"QUESTION_ANS": extractive question answering.</summary>
    QuestionAns,
    /// <summary>"FEATURE_EXTRACTION": hidden states / embeddings.</summary>
    FeatureExtraction,
    /// <summary>"SEQ_2_SEQ_LM": encoder-decoder language modelling.</summary>
    Seq2SeqLM,
}

/// <summary>Converts <see cref="TaskType"/> to and from PEFT's JSON names.</summary>
internal sealed class TaskTypeJsonConverter : JsonConverter<TaskType>
{
    private static readonly (TaskType Value, string Name)[] Names =
    [
        (TaskType.CausalLM, "CAUSAL_LM"), (TaskType.SeqCls, "SEQ_CLS"), (TaskType.TokenCls, "TOKEN_CLS"),
        (TaskType.QuestionAns, "QUESTION_ANS"), (TaskType.FeatureExtraction, "FEATURE_EXTRACTION"),
        (TaskType.Seq2SeqLM, "SEQ_2_SEQ_LM"),
    ];

    /// <summary>PEFT's name of a task type ("CAUSAL_LM", ...).</summary>
    public static string ToPeftName(TaskType value) => Names.First(n => n.Value == value).Name;

    /// <summary>Parses PEFT's name of a task type; throws naming the value when unknown.</summary>
    public static TaskType Parse(string name)
    {
        foreach (var (value, n) in Names)
        {
            if (string.Equals(n, name, StringComparison.OrdinalIgnoreCase)) return value;
        }
        throw new JsonException($"task_type '{name}' is not one of {string.Join(", ", Names.Select(n => n.Name))}.");
    }

    /// <inheritdoc />
    public override TaskType Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        Parse(reader.GetString() ?? throw new JsonException("task_type must be a string"));

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, TaskType value, JsonSerializerOptions options) =>
        writer.WriteStringValue(ToPeftName(value));
}
