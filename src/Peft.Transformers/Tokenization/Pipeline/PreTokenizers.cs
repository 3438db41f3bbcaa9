using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Peft.Transformers.Tokenization.Pipeline;

// Ours: the tokenizer.json pre-tokenizers. ML.Tokenizers' PreTokenizer yields (offset, length) ranges on the
// raw string; HF pre-tokenizers also transform text (ByteLevel's byte-to-unicode map, Metaspace's replacement) and
// carry alignments, and their split behaviours (Isolated, MergedWithPrevious, ...) have no ML.Tokenizers equivalent.

internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

internal interface IPreTokenizer
{
    /// <summary>Splits (and may transform) one piece; <paramref name="output"/> receives the non-empty pieces.</summary>
    void PreTokenize(NormalizedString piece, List<NormalizedString> output);
}

internal static class PreTokenizers
{
    public static IPreTokenizer? FromJson(JsonNode? node, string where)
    {
        if (node is null) return null;
        string type = Json.Type(node, where);
        switch (type)
        {
            case "ByteLevel":
                return new ByteLevelPreTokenizer(Json.Bool(node, "add_prefix_space", true), Json.Bool(node, "use_regex", true));
            case "Split":
                return new SplitPreTokenizer(Pattern.FromJson(node["pattern"], where + ".pattern"),
                    ParseBehavior(Json.String(node, "behavior", where), where), Json.Bool(node, "invert", false));
            case "Metaspace":
                {
                    string rep = Json.OptString(node, "replacement") ?? "\u2581";
                    string scheme = Json.OptString(node, "prepend_scheme")
                        ?? (Json.Bool(node, "add_prefix_space", true) ? "always" : "never");
                    if (scheme is not ("always" or "first" or "never"))
                        throw new NotSupportedException($"{where}: Metaspace prepend_scheme '{scheme}' is not supported");
                    return new MetaspacePreTokenizer(rep, scheme, Json.Bool(node, "split", true));
                }
            case "Whitespace":
                return new SplitPreTokenizer(new RegexPattern(new Regex(@"\w+|[^\w\s]+", RegexOptions.Compiled)), SplitBehavior.Removed, invert: true);
            case "WhitespaceSplit":
                return new CharSplitPreTokenizer(CharClass.IsWhitespace, SplitBehavior.Removed);
            case "BertPreTokenizer":
                return new SequencePreTokenizer([
                    new CharSplitPreTokenizer(CharClass.IsWhitespace, SplitBehavior.Removed),
                    new CharSplitPreTokenizer(CharClass.IsPunctuation, SplitBehavior.Isolated)]);
            case "Punctuation":
                return new CharSplitPreTokenizer(CharClass.IsPunctuation,
                    ParseBehavior(Json.OptString(node, "behavior") ?? "Isolated", where));
            case "Digits":
                return new CharSplitPreTokenizer(CharClass.IsNumeric,
                    Json.Bool(node, "individual_digits", false) ? SplitBehavior.Isolated : SplitBehavior.Contiguous);
            case "Sequence":
                var list = node["pretokenizers"] as JsonArray
                    ?? throw new InvalidDataException($"{where}: Sequence pre_tokenizer has no 'pretokenizers' array");
                return new SequencePreTokenizer(list.Select((n, i) => FromJson(n, $"{where}.pretokenizers[{i}]") ?? throw new InvalidDataException($"{where}.pretokenizers[{i}]: null entry")).ToArray());
            default:
                throw new NotSupportedException($"{where}: pre_tokenizer type '{type}' is not supported");
        }
    }

    public static SplitBehavior ParseBehavior(string s, string where) => s switch
    {
        "Removed" => SplitBehavior.Removed,
        "Isolated" => SplitBehavior.Isolated,
        "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
        "MergedWithNext" => SplitBehavior.MergedWithNext,
        "Contiguous" => SplitBehavior.Contiguous,
        _ => throw new NotSupportedException($"{where}: split behavior '{s}' is not supported"),
    };

    /// <summary>HF NormalizedString::split: turns (range, isMatch) pieces covering the text into output pieces.</summary>
    public static void SplitBy(NormalizedString s, List<(int Start, int End)> matches, SplitBehavior behavior, bool invert, List<NormalizedString> output)
    {
        var pieces = new List<(int S, int E, bool M)>(matches.Count * 2 + 1);
        int prev = 0;
        foreach (var (ms, me) in matches)
        {
            if (prev < ms) pieces.Add((prev, ms, false));
            pieces.Add((ms, me, true));
            prev = me;
        }
        if (prev < s.Length) pieces.Add((prev, s.Length, false));
        if (invert) for (int i = 0; i < pieces.Count; i++) pieces[i] = pieces[i] with { M = !pieces[i].M };

        var res = new List<(int S, int E)>(pieces.Count);
        switch (behavior)
        {
            case SplitBehavior.Removed:
                foreach (var p in pieces) if (!p.M) res.Add((p.S, p.E));
                break;
            case SplitBehavior.Isolated:
                foreach (var p in pieces) res.Add((p.S, p.E));
                break;
            case SplitBehavior.MergedWithPrevious:
                {
                    bool prevMatch = false;
                    foreach (var p in pieces)
                    {
                        if (p.M && !prevMatch && res.Count > 0) res[^1] = (res[^1].S, p.E);
                        else res.Add((p.S, p.E));
                        prevMatch = p.M;
                    }
                    break;
                }
            case SplitBehavior.MergedWithNext:
                {
                    bool prevMatch = false;
                    for (int i = pieces.Count - 1; i >= 0; i--)
                    {
                        var p = pieces[i];
                        if (p.M && !prevMatch && res.Count > 0) res[^1] = (p.S, res[^1].E);
                        else res.Add((p.S, p.E));
                        prevMatch = p.M;
                    }
                    res.Reverse();
                    break;
                }
            case SplitBehavior.Contiguous:
                {
                    bool prevMatch = false;
                    foreach (var p in pieces)
                    {
                        if (p.M == prevMatch && res.Count > 0) res[^1] = (res[^1].S, p.E);
                        else res.Add((p.S, p.E));
                        prevMatch = p.M;
                    }
                    break;
                }
        }
        foreach (var (a, b) in res)
            if (b > a) output.Add(a == 0 && b == s.Length ? s : s.Slice(a, b));
    }
}

internal sealed class RegexPattern(Regex re)
{
    public Regex Regex => re;
}

internal sealed class SequencePreTokenizer(IPreTokenizer[] items) : IPreTokenizer
{
    public void PreTokenize(NormalizedString piece, List<NormalizedString> output)
    {
        var cur = new List<NormalizedString> { piece };
        var next = new List<NormalizedString>();
        foreach (var p in items)
        {
            next.Clear();
            foreach (var c in cur) p.PreTokenize(c, next);
            (cur, next) = (next, cur);
        }
        output.AddRange(cur);
    }
}

internal sealed class SplitPreTokenizer : IPreTokenizer
{
    private readonly Pattern? _pattern;
    private readonly Regex? _regex;
    private readonly SplitBehavior _behavior;
    private readonly bool _invert;

    public SplitPreTokenizer(Pattern pattern, SplitBehavior behavior, bool invert)
    {
        _pattern = pattern;
        _behavior = behavior;
        _invert = invert;
    }

    public SplitPreTokenizer(RegexPattern regex, SplitBehavior behavior, bool invert)
    {
        _regex = regex.Regex;
        _behavior = behavior;
        _invert = invert;
    }

    public void PreTokenize(NormalizedString piece, List<NormalizedString> output)
    {
        List<(int, int)> m;
        if (_pattern is not null) m = _pattern.Matches(piece.Text);
        else
        {
            m = [];
            foreach (var (s, e) in RegexUtil.Matches(_regex!, piece.Text)) if (e > s) m.Add((s, e));
        }
        PreTokenizers.SplitBy(piece, m, _behavior, _invert, output);
    }
}

/// <summary>Splits on every code point that satisfies a predicate (each one is its own match, as in HF).</summary>
internal sealed class CharSplitPreTokenizer(Func<int, bool> predicate, SplitBehavior behavior) : IPreTokenizer
{
    public void PreTokenize(NormalizedString piece, List<NormalizedString> output)
    {
        var m = new List<(int, int)>();
        string t = piece.Text;
        for (int i = 0; i < t.Length;)
        {
            int cp = CharClass.CodePointAt(t, i, out int len);
            if (predicate(cp)) m.Add((i, i + len));
            i += len;
        }
        PreTokenizers.SplitBy(piece, m, behavior, false, output);
    }
}

internal sealed class MetaspacePreTokenizer(string replacement, string prependScheme, bool split) : IPreTokenizer
{
    public string Replacement => replacement;
    public string PrependScheme => prependScheme;

    public void PreTokenize(NormalizedString piece, List<NormalizedString> output)
    {
        var s = new ReplaceNormalizer(Pattern.Literal(" "), replacement).Normalize(piece);
        bool prepend = prependScheme == "always" || (prependScheme == "first" && s.OrigStart == 0);
        if (prepend && !s.Text.StartsWith(replacement, StringComparison.Ordinal))
            s = new PrependNormalizer(replacement).Normalize(s);
        if (split) PreTokenizers.SplitBy(s, Pattern.Literal(replacement).Matches(s.Text), SplitBehavior.MergedWithNext, false, output);
        else if (s.Length > 0) output.Add(s);
    }
}

/// <summary>GPT-2 byte-level: optional prefix space, the GPT-2 split regex, then every UTF-8 byte mapped to a
/// printable char (all chars of one code point aligned to that code point, like HF).</summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : IPreTokenizer
{
    // GPT-2's pattern as in HF tokenizers' ByteLevel (\s, \p{L}, \p{N} are Unicode-aware in both engines).
    private static readonly Regex Gpt2 = new(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
        RegexOptions.Compiled | RegexOptions.CultureInvariant);

    public bool AddPrefixSpace => addPrefixSpace;

    public void PreTokenize(NormalizedString piece, List<NormalizedString> output)
    {
        var s = piece;
        if (addPrefixSpace && !s.Text.StartsWith(' ')) s = new PrependNormalizer(" ").Normalize(s);
        var parts = new List<NormalizedString>();
        if (useRegex)
        {
            var m = new List<(int, int)>();
            foreach (var (a, b) in RegexUtil.Matches(Gpt2, s.Text)) if (b > a) m.Add((a, b));
            PreTokenizers.SplitBy(s, m, SplitBehavior.Isolated, false, parts);
        }
        else if (s.Length > 0) parts.Add(s);
        foreach (var p in parts) output.Add(ToByteChars(p));
    }

    public static NormalizedString ToByteChars(NormalizedString s)
    {
        var b = new NormalizedBuilder(s.Length * 2);
        Span<byte> buf = stackalloc byte[4];
        string t = s.Text;
        for (int i = 0; i < t.Length;)
        {
            var (os, oe, len) = s.RuneAt(i);
            int n = Encoding.UTF8.GetBytes(t.AsSpan(i, len), buf);
            for (int k = 0; k < n; k++) b.Append(ByteLevelMap.ByteToChar[buf[k]], os, oe);
            i += len;
        }
        return b.Build(s);
    }
}

/// <summary>GPT-2's reversible byte to printable-unicode map.</summary>
internal static class ByteLevelMap
{
    public static readonly char[] ByteToChar = Build();
    public static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, i) => (c, (byte)i)).ToDictionary(x => x.c, x => x.Item2);

    private static char[] Build()
    {
        var map = new char[256];
        var printable = new bool[256];
        for (int b = '!'; b <= '~'; b++) printable[b] = true;
        for (int b = 0xA1; b <= 0xAC; b++) printable[b] = true;
        for (int b = 0xAE; b <= 0xFF; b++) printable[b] = true;
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            if (printable[b]) map[b] = (char)b;
            else map[b] = (char)(256 + n++);
        }
        return map;
    }
}
