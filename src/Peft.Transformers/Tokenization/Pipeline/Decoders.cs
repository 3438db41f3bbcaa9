using System.Text;
using System.Text.Json.Nodes;

namespace Peft.Transformers.Tokenization.Pipeline;

// Ours: HF decoders work on the list of token strings as a chain (each decoder maps tokens to tokens, then
// they are concatenated). ML.Tokenizers decodes ids inside each model with its own rules (for example no
// ByteFallback + Fuse + Strip chain for Llama-2), so the chain is implemented here to match HF text exactly.

internal interface IDecoder
{
    List<string> DecodeChain(List<string> tokens);
}

internal static class Decoders
{
    public static IDecoder? FromJson(JsonNode? node, string where)
    {
        if (node is null) return null;
        string type = Json.Type(node, where);
        switch (type)
        {
            case "ByteLevel": return new ByteLevelDecoder();
            case "Metaspace":
                {
                    string rep = Json.OptString(node, "replacement") ?? "\u2581";
                    string scheme = Json.OptString(node, "prepend_scheme") ?? (Json.Bool(node, "add_prefix_space", true) ? "always" : "never");
                    return new MetaspaceDecoder(rep, scheme != "never");
                }
            case "WordPiece": return new WordPieceDecoder(Json.OptString(node, "prefix") ?? "##", Json.Bool(node, "cleanup", true));
            case "ByteFallback": return new ByteFallbackDecoder();
            case "Fuse": return new FuseDecoder();
            case "Strip":
                return new StripDecoder(Json.String(node, "content", where), Json.Int(node, "start", 0), Json.Int(node, "stop", 0));
            case "Replace":
                return new ReplaceDecoder(Pattern.FromJson(node["pattern"], where + ".pattern"), Json.String(node, "content", where));
            case "BPEDecoder": return new BpeSuffixDecoder(Json.OptString(node, "suffix") ?? "</w>");
            case "Sequence":
                var list = node["decoders"] as JsonArray
                    ?? throw new InvalidDataException($"{where}: Sequence decoder has no 'decoders' array");
                return new SequenceDecoder(list.Select((n, i) => FromJson(n, $"{where}.decoders[{i}]") ?? throw new InvalidDataException($"{where}.decoders[{i}]: null entry")).ToArray());
            default:
                throw new NotSupportedException($"{where}: decoder type '{type}' is not supported");
        }
    }
}

internal sealed class SequenceDecoder(IDecoder[] items) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        foreach (var d in items) tokens = d.DecodeChain(tokens);
        return tokens;
    }
}

/// <summary>Maps byte-level chars back to bytes and decodes UTF-8 (invalid sequences become U+FFFD, like Rust's
/// from_utf8_lossy); a token with a char outside the byte alphabet contributes its own UTF-8 bytes.</summary>
internal sealed class ByteLevelDecoder : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        Span<byte> tmp = stackalloc byte[4];
        foreach (var t in tokens)
        {
            bool all = true;
            foreach (char c in t) if (!ByteLevelMap.CharToByte.ContainsKey(c)) { all = false; break; }
            if (all) foreach (char c in t) bytes.Add(ByteLevelMap.CharToByte[c]);
            else bytes.AddRange(Encoding.UTF8.GetBytes(t));
        }
        return [Encoding.UTF8.GetString(bytes.ToArray())];
    }
}

internal sealed class MetaspaceDecoder(string replacement, bool stripFirst) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var res = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            string s = tokens[i].Replace(replacement, " ", StringComparison.Ordinal);
            if (i == 0 && stripFirst && s.StartsWith(' ')) s = s[1..];
            res.Add(s);
        }
        return res;
    }
}

internal sealed class WordPieceDecoder(string prefix, bool cleanup) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var res = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            string t = tokens[i];
            if (i != 0)
            {
                if (t.StartsWith(prefix, StringComparison.Ordinal)) t = t[prefix.Length..];
                else t = " " + t;
            }
            if (cleanup) t = Cleanup(t);
            res.Add(t);
        }
        return res;
    }

    /// <summary>HF <c>cleanup</c>: removes the spaces the tokenization put before punctuation and contractions.</summary>
    public static string Cleanup(string s) => s
        .Replace(" .", ".", StringComparison.Ordinal).Replace(" ?", "?", StringComparison.Ordinal)
        .Replace(" !", "!", StringComparison.Ordinal).Replace(" ,", ",", StringComparison.Ordinal)
        .Replace(" ' ", "'", StringComparison.Ordinal).Replace(" n't", "n't", StringComparison.Ordinal)
        .Replace(" 'm", "'m", StringComparison.Ordinal).Replace(" do not", " don't", StringComparison.Ordinal)
        .Replace(" 's", "'s", StringComparison.Ordinal).Replace(" 've", "'ve", StringComparison.Ordinal)
        .Replace(" 're", "'re", StringComparison.Ordinal);
}

/// <summary>Turns runs of &lt;0xNN&gt; tokens into text; an invalid UTF-8 run gives one U+FFFD per byte (HF).</summary>
internal sealed class ByteFallbackDecoder : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var res = new List<string>(tokens.Count);
        var pending = new List<byte>();
        void Flush()
        {
            if (pending.Count == 0) return;
            try
            {
                res.Add(new UTF8Encoding(false, true).GetString(pending.ToArray()));
            }
            catch (DecoderFallbackException)
            {
                for (int i = 0; i < pending.Count; i++) res.Add("\uFFFD");
            }
            pending.Clear();
        }
        foreach (var t in tokens)
        {
            if (t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>'
                && byte.TryParse(t.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out byte b))
            {
                pending.Add(b);
                continue;
            }
            Flush();
            res.Add(t);
        }
        Flush();
        return res;
    }
}

internal sealed class FuseDecoder : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
}

internal sealed class StripDecoder(string content, int start, int stop) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var res = new List<string>(tokens.Count);
        foreach (var t in tokens)
        {
            int a = 0, b = t.Length;
            for (int i = 0; i < start && a + content.Length <= b && string.CompareOrdinal(t, a, content, 0, content.Length) == 0; i++) a += content.Length;
            for (int i = 0; i < stop && b - content.Length >= a && string.CompareOrdinal(t, b - content.Length, content, 0, content.Length) == 0; i++) b -= content.Length;
            res.Add(t[a..b]);
        }
        return res;
    }
}

internal sealed class ReplaceDecoder(Pattern pattern, string content) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) => tokens.Select(t => pattern.Replace(t, content)).ToList();
}

internal sealed class BpeSuffixDecoder(string suffix) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) =>
        tokens.Select((t, i) => t.Replace(suffix, i == tokens.Count - 1 ? "" : " ", StringComparison.Ordinal)).ToList();
}
