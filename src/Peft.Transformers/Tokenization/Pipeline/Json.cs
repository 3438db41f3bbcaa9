using System.Text.Json.Nodes;

namespace Peft.Transformers.Tokenization.Pipeline;

/// <summary>Small helpers to read tokenizer.json nodes with errors that name the component.</summary>
internal static class Json
{
    public static string Type(JsonNode node, string where)
    {
        if (node is not JsonObject o) throw new InvalidDataException($"{where}: expected an object, got {node.ToJsonString()}");
        if (o["type"] is JsonValue v && v.TryGetValue(out string? t)) return t;
        throw new InvalidDataException($"{where}: missing 'type'");
    }

    public static bool Bool(JsonNode node, string key, bool dflt) =>
        node[key] is JsonValue v && v.TryGetValue(out bool b) ? b : dflt;

    public static string String(JsonNode node, string key, string where) =>
        node[key] is JsonValue v && v.TryGetValue(out string? s) ? s
            : throw new InvalidDataException($"{where}: missing string '{key}'");

    public static string? OptString(JsonNode node, string key) =>
        node[key] is JsonValue v && v.TryGetValue(out string? s) ? s : null;

    public static int Int(JsonNode node, string key, int dflt) =>
        node[key] is JsonValue v && v.TryGetValue(out int i) ? i : dflt;
}
