using System.Text;
using System.Text.Json.Nodes;

namespace Peft.Fuzz;

/// <summary>
/// Structured mutations of a seed file: generic byte-level ones (bit flips, truncation, splicing, inserted and
/// deleted ranges, boundary lengths, invalid UTF-8, deep nesting, huge / negative numbers, duplicated lines = duplicate
/// keys in pretty-printed JSON) and JSON-aware ones (replace / delete / duplicate a value anywhere in the tree).
/// Deterministic for a given <see cref="Random"/>. libFuzzer / AFL binaries are not available on this machine, so
/// coverage guidance is replaced by these format-aware mutations (SharpFuzz alone has no driver here).
/// </summary>
public sealed class Mutator(Random rng)
{
    private static readonly string[] Numbers =
    [
        "-1", "0", "1", "-2147483649", "2147483647", "2147483648", "4294967296", "9223372036854775807",
        "9223372036854775808", "-9223372036854775808", "18446744073709551615", "1e308", "-1e308", "1e9", "1e12", "1000000",
        "1.5", "NaN", "Infinity", "-0", "99999999999999999999999",
    ];

    private static readonly byte[][] BadUtf8 = [[0xC3, 0x28], [0xFF], [0xED, 0xA0, 0x80], [0xF0, 0x28, 0x8C], [0xC0, 0xAF], [0x00]];

    private static readonly string[] Tokens = ["{", "}", "[", "]", "\"", ",", ":", "\\", "\\u0000", "\\ud800", "null", "\n", "\r", "..", "/", "\t"];

    /// <summary>The random source.</summary>
    public Random Rng => rng;

    /// <summary>Applies 1–4 generic mutations.</summary>
    public byte[] Mutate(byte[] input, byte[]? other = null)
    {
        var data = input;
        int n = 1 + rng.Next(4);
        for (int i = 0; i < n; i++) data = MutateOnce(data, other);
        return data;
    }

    private byte[] MutateOnce(byte[] d, byte[]? other)
    {
        var l = new List<byte>(d);
        switch (rng.Next(12))
        {
            case 0: // bit flips
                if (l.Count == 0) break;
                for (int k = 1 + rng.Next(8); k > 0; k--) { int p = rng.Next(l.Count); l[p] ^= (byte)(1 << rng.Next(8)); }
                break;
            case 1: // truncation
                return d.AsSpan(0, rng.Next(d.Length + 1)).ToArray();
            case 2: // boundary lengths
                {
                    int[] lens = [0, 1, 7, 8, 9, 15, 16, d.Length - 1];
                    int len = Math.Clamp(lens[rng.Next(lens.Length)], 0, d.Length);
                    return d.AsSpan(0, len).ToArray();
                }
            case 3: // splice with another seed
                if (other is { Length: > 0 })
                {
                    int a = rng.Next(d.Length + 1), b = rng.Next(other.Length);
                    return [.. d.AsSpan(0, a), .. other.AsSpan(b)];
                }
                goto case 0;
            case 4: // delete a range
                if (l.Count == 0) break;
                { int p = rng.Next(l.Count); l.RemoveRange(p, Math.Min(l.Count - p, 1 + rng.Next(64))); }
                break;
            case 5: // duplicate a range
                if (l.Count == 0) break;
                { int p = rng.Next(l.Count), len = Math.Min(l.Count - p, 1 + rng.Next(64)); l.InsertRange(rng.Next(l.Count), l.GetRange(p, len)); }
                break;
            case 6: // invalid UTF-8
                l.InsertRange(rng.Next(l.Count + 1), BadUtf8[rng.Next(BadUtf8.Length)]);
                break;
            case 7: // replace a number with an interesting one
                return ReplaceNumber(d);
            case 8: // deep nesting
                {
                    int depth = rng.Next(2) == 0 ? 70 : 5000;
                    var open = rng.Next(2) == 0 ? "[" : "{\"a\":";
                    var s = string.Concat(Enumerable.Repeat(open, depth));
                    l.InsertRange(rng.Next(l.Count + 1), Encoding.ASCII.GetBytes(s));
                }
                break;
            case 9: // duplicate a line (duplicate keys in pretty-printed JSON, repeated rows / entries)
                return DuplicateLine(d);
            case 10: // structural token
                l.InsertRange(rng.Next(l.Count + 1), Encoding.ASCII.GetBytes(Tokens[rng.Next(Tokens.Length)]));
                break;
            default: // random bytes
                {
                    var bytes = new byte[1 + rng.Next(16)];
                    rng.NextBytes(bytes);
                    l.InsertRange(rng.Next(l.Count + 1), bytes);
                }
                break;
        }
        return [.. l];
    }

    private byte[] ReplaceNumber(byte[] d)
    {
        var spans = new List<(int Start, int Len)>();
        for (int i = 0; i < d.Length; i++)
        {
            if (d[i] is >= (byte)'0' and <= (byte)'9')
            {
                int s = i;
                while (i < d.Length && d[i] is >= (byte)'0' and <= (byte)'9') i++;
                spans.Add((s, i - s));
            }
        }
        var num = Encoding.ASCII.GetBytes(Numbers[rng.Next(Numbers.Length)]);
        if (spans.Count == 0) return [.. d, .. num];
        var (start, len) = spans[rng.Next(spans.Count)];
        return [.. d.AsSpan(0, start), .. num, .. d.AsSpan(start + len)];
    }

    private byte[] DuplicateLine(byte[] d)
    {
        var lines = new List<int> { 0 };
        for (int i = 0; i < d.Length; i++) if (d[i] == (byte)'\n') lines.Add(i + 1);
        if (lines.Count < 2) return [.. d, .. d];
        int k = rng.Next(lines.Count - 1);
        var line = d.AsSpan(lines[k], lines[k + 1] - lines[k]).ToArray();
        return [.. d.AsSpan(0, lines[k + 1]), .. line, .. d.AsSpan(lines[k + 1])];
    }

    /// <summary>
    /// Parses <paramref name="json"/> and changes one value anywhere in the tree (an interesting number, a string, null,
    /// an empty or deep container, a removed key, a key renamed to a sibling's name); falls back to
    /// <see cref="Mutate"/> when the text is not JSON.
    /// </summary>
    public byte[] MutateJson(byte[] json, byte[]? other = null)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (Exception e) when (e is System.Text.Json.JsonException or ArgumentException) { return Mutate(json, other); }
        if (root is null) return Mutate(json, other);
        var nodes = new List<JsonNode>();
        Collect(root, nodes);
        int edits = 1 + rng.Next(3);
        for (int e = 0; e < edits && nodes.Count > 0; e++)
        {
            var target = nodes[rng.Next(nodes.Count)];
            if (target.Parent is not { } parent) continue;
            var replacement = InterestingValue(target);
            if (parent is JsonObject obj)
            {
                var key = target.GetPropertyName();
                if (rng.Next(6) == 0) { obj.Remove(key); }
                else obj[key] = replacement;
            }
            else if (parent is JsonArray arr)
            {
                int idx = target.GetElementIndex();
                if (rng.Next(6) == 0) arr.RemoveAt(idx);
                else if (rng.Next(6) == 0) arr.Add(replacement);
                else arr[idx] = replacement;
            }
            nodes.Clear();
            Collect(root, nodes);
        }
        var text = root.ToJsonString();
        if (rng.Next(5) == 0) text = DuplicateKey(text);
        var bytes = Encoding.UTF8.GetBytes(text);
        return rng.Next(4) == 0 ? Mutate(bytes, other) : bytes;
    }

    private string DuplicateKey(string text)
    {
        // Repeat the first property of some object: {"k":v, ...} -> {"k":v,"k":v, ...} (System.Text.Json writes compact text).
        int at = text.IndexOf("{\"", rng.Next(Math.Max(1, text.Length)), StringComparison.Ordinal);
        if (at < 0) at = text.IndexOf("{\"", StringComparison.Ordinal);
        if (at < 0) return text;
        int colon = text.IndexOf("\":", at + 2, StringComparison.Ordinal);
        if (colon < 0) return text;
        var key = text.Substring(at + 1, colon - at); // "k"
        return text.Insert(at + 1, key + ":0,");
    }

    private JsonNode? InterestingValue(JsonNode old)
    {
        switch (rng.Next(10))
        {
            case 0: return null;
            case 1: return JsonValue.Create(Numbers[rng.Next(Numbers.Length)]);
            case 2:
                var lit = Numbers[rng.Next(Numbers.Length)];
                return JsonNode.Parse(lit is "NaN" or "Infinity" ? "1e308" : lit);
            case 3: return new JsonArray();
            case 4: return new JsonObject();
            case 5: return JsonValue.Create(rng.Next(2) == 0 ? "" : new string('a', rng.Next(2) == 0 ? 1 : 70000));
            case 6: return JsonValue.Create(rng.Next(2) == 0 ? "../../etc/passwd" : "/tmp/x");
            case 7: return JsonValue.Create(rng.Next(2) == 0);
            case 8: return JsonNode.Parse(string.Concat(Enumerable.Repeat("[", 60)) + string.Concat(Enumerable.Repeat("]", 60)));
            default: return old is JsonValue v && v.TryGetValue<long>(out var n) ? JsonValue.Create(-n - 1) : JsonValue.Create(-1);
        }
    }

    private static void Collect(JsonNode node, List<JsonNode> into)
    {
        into.Add(node);
        if (into.Count > 20000) return;
        if (node is JsonObject o) foreach (var (_, v) in o) { if (v is not null) Collect(v, into); }
        else if (node is JsonArray a) foreach (var v in a) { if (v is not null) Collect(v, into); }
    }
}
