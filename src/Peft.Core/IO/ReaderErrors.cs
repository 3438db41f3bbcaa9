using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Core.IO;

/// <summary>
/// Turns what a JSON or binary reader throws for bad input into the documented set, naming the file. Readers wrap their
/// parsing in <see cref="Guard{T}"/>: <see cref="JsonException"/>, <see cref="ArgumentException"/> (duplicate keys),
/// <see cref="InvalidOperationException"/> (a JSON value of the wrong kind, invalid UTF-8 in a string),
/// <see cref="FormatException"/>, <see cref="InvalidCastException"/> and <see cref="OverflowException"/> (a number too
/// large for its field) become <see cref="InvalidDataException"/>; <see cref="NotSupportedException"/> stays one. A
/// message that already names the file is kept. Bugs (<see cref="NullReferenceException"/>,
/// <see cref="IndexOutOfRangeException"/>) are never wrapped: the fuzz harness (tests/Peft.Fuzz) must see them.
/// </summary>
internal static class ReaderErrors
{
    /// <summary>Runs <paramref name="read"/>; bad-input exceptions come out naming <paramref name="file"/>.</summary>
    public static T Guard<T>(string file, Func<T> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        try
        {
            return read();
        }
        catch (Exception e) when (IsBadInput(e) && !Names(e, file))
        {
            throw Wrap(e, file);
        }
    }

    /// <summary>True for the exception types that bad input produces in System.Text.Json and our parsers.</summary>
    public static bool IsBadInput(Exception e) => e is JsonException or ArgumentException or InvalidOperationException
        or FormatException or InvalidCastException or OverflowException or NotSupportedException or InvalidDataException
        or KeyNotFoundException && e is not ObjectDisposedException;

    /// <summary>The documented exception for <paramref name="e"/>, with the file in its message.</summary>
    public static Exception Wrap(Exception e, string file) => e is NotSupportedException
        ? new NotSupportedException($"{file}: {e.Message}", e)
        : new InvalidDataException($"{file}: {e.Message}", e);

    private static bool Names(Exception e, string file) =>
        e is not (ArgumentException or InvalidOperationException or OverflowException or InvalidCastException or KeyNotFoundException)
        && e.Message.Contains(Path.GetFileName(file), StringComparison.Ordinal);

    /// <summary>
    /// Parses JSON text into a node tree and walks it, so a duplicate key or an invalid string fails here (System.Text.Json
    /// only notices them on first access) as an <see cref="InvalidDataException"/> naming the file and the key.
    /// </summary>
    public static JsonNode? ParseJson(string json, string file, JsonDocumentOptions options = default)
    {
        ArgumentNullException.ThrowIfNull(json);
        return Guard(file, () =>
        {
            var node = JsonNode.Parse(json, documentOptions: options);
            Walk(node, file, "");
            return node;
        });
    }

    private static void Walk(JsonNode? node, string file, string path)
    {
        switch (node)
        {
            case JsonObject o:
                var seen = new HashSet<string>(StringComparer.Ordinal);
                try
                {
                    foreach (var (k, v) in o)
                    {
                        if (!seen.Add(k)) throw new InvalidDataException($"{file}: key '{path}{k}' appears twice");
                        Walk(v, file, $"{path}{k}.");
                    }
                }
                catch (ArgumentException e)
                {
                    throw new InvalidDataException($"{file}: a key of '{path.TrimEnd('.')}' appears twice ({e.Message})", e);
                }
                break;
            case JsonArray a:
                for (int i = 0; i < a.Count; i++) Walk(a[i], file, $"{path}[{i}].");
                break;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                // A lone surrogate escape ("\ud800") parses, but reading it throws (InvalidOperationException, wrapped
                // by Guard) or writing it back does (a config saved again): refuse it here, naming the key.
                if (HasUnpairedSurrogate(v.GetValue<string>()))
                    throw new InvalidDataException($"{file}: '{path.TrimEnd('.')}' holds an unpaired UTF-16 surrogate");
                break;
        }
    }

    private static bool HasUnpairedSurrogate(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) i++;
            else if (char.IsSurrogate(s[i])) return true;
        }
        return false;
    }
}
