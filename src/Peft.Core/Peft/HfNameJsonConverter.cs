using System.Text.Json;
using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// Converts an enum that stands for one of Hugging Face's closed sets of strings (e.g. LoRA's <c>bias</c>) to and from
/// HF's exact strings, so files on disk stay byte-compatible with Python. An unknown string fails with a
/// <see cref="JsonException"/> naming the key, the value and the accepted names (the config reader adds the file).
/// </summary>
/// <typeparam name="T">The enum.</typeparam>
/// <param name="key">The JSON key, named in errors ("bias").</param>
/// <param name="names">Every enum value with HF's string, in HF's order.</param>
internal abstract class HfNameJsonConverter<T>(string key, params (T Value, string Name)[] names) : JsonConverter<T>
    where T : struct, Enum
{
    /// <summary>HF's string for <paramref name="value"/>.</summary>
    public string ToHfName(T value)
    {
        foreach (var (v, n) in names)
        {
            if (EqualityComparer<T>.Default.Equals(v, value)) return n;
        }
        throw new ArgumentOutOfRangeException(nameof(value), value, $"{key}: {typeof(T).Name} value {value} has no Hugging Face name.");
    }

    /// <summary>The enum value for HF's string <paramref name="name"/> (exact match); throws naming the key and value when unknown.</summary>
    public T Parse(string name)
    {
        foreach (var (v, n) in names)
        {
            if (string.Equals(n, name, StringComparison.Ordinal)) return v;
        }
        throw new JsonException($"\"{key}\": \"{name}\" is not one of {string.Join(", ", names.Select(n => $"\"{n.Name}\""))}.");
    }

    /// <inheritdoc />
    public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String
            ? Parse(reader.GetString()!)
            : throw new JsonException($"\"{key}\": expected a string ({string.Join(", ", names.Select(n => $"\"{n.Name}\""))}), got {reader.TokenType}.");

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) => writer.WriteStringValue(ToHfName(value));
}
