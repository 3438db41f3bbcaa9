using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Peft.Transformers.Tokenization.Pipeline;

// Ours: every normalizer of tokenizer.json, re-implemented over NormalizedString so that offsets are kept
// (ML.Tokenizers' Normalizer returns a bare string, and has no NFC/Replace/Prepend/BertNormalizer with
// HF's exact rules).

internal interface INormalizer
{
    NormalizedString Normalize(NormalizedString s);
}

internal static class Normalizers
{
    public static INormalizer? FromJson(JsonNode? node, string where)
    {
        if (node is null) return null;
        string type = Json.Type(node, where);
        switch (type)
        {
            case "NFC": return new UnicodeNormalizer(NormalizationForm.FormC);
            case "NFD": return new UnicodeNormalizer(NormalizationForm.FormD);
            case "NFKC": return new UnicodeNormalizer(NormalizationForm.FormKC);
            case "NFKD": return new UnicodeNormalizer(NormalizationForm.FormKD);
            case "Lowercase": return new LowercaseNormalizer();
            case "StripAccents": return new StripAccentsNormalizer();
            case "Strip":
                return new StripNormalizer(Json.Bool(node, "left", true), Json.Bool(node, "right", true));
            case "Prepend": return new PrependNormalizer(Json.String(node, "prepend", where));
            case "Replace":
                return new ReplaceNormalizer(Pattern.FromJson(node["pattern"], where + ".pattern"), Json.String(node, "content", where));
            case "BertNormalizer":
                return new BertNormalizer(
                    Json.Bool(node, "clean_text", true), Json.Bool(node, "handle_chinese_chars", true),
                    node["strip_accents"] is JsonValue v && v.TryGetValue(out bool sa) ? sa : null,
                    Json.Bool(node, "lowercase", true));
            case "Sequence":
                var list = node["normalizers"] as JsonArray
                    ?? throw new InvalidDataException($"{where}: Sequence normalizer has no 'normalizers' array");
                return new SequenceNormalizer(list.Select((n, i) => FromJson(n, $"{where}.normalizers[{i}]") ?? throw new InvalidDataException($"{where}.normalizers[{i}]: null entry")).ToArray());
            default:
                throw new NotSupportedException($"{where}: normalizer type '{type}' is not supported");
        }
    }

    /// <summary>Applies <paramref name="map"/> to every code point; the produced text is aligned to that code point.</summary>
    public static NormalizedString MapRunes(NormalizedString s, Func<int, string?> map)
    {
        var b = new NormalizedBuilder(s.Length + 8);
        string t = s.Text;
        for (int i = 0; i < t.Length;)
        {
            int cp = CharClass.CodePointAt(t, i, out int len);
            string? r = map(cp);
            if (r is null) b.AppendFrom(s, i, i + len);
            else if (r.Length > 0) b.Append(r, s.StartAt(i), s.EndAt(i + len - 1));
            i += len;
        }
        return b.Build(s);
    }
}

internal sealed class SequenceNormalizer(INormalizer[] items) : INormalizer
{
    public NormalizedString Normalize(NormalizedString s)
    {
        foreach (var n in items) s = n.Normalize(s);
        return s;
    }
}

/// <summary>NFC/NFD/NFKC/NFKD. .NET gives no alignment, so we normalize each base character with its combining
/// marks as one unit and align its output to that unit (HF aligns per produced char, which is the same for
/// one-to-many and many-to-one mappings inside such a cluster).</summary>
internal sealed class UnicodeNormalizer(NormalizationForm form) : INormalizer
{
    public NormalizedString Normalize(NormalizedString s)
    {
        if (s.Text.IsNormalized(form)) return s;
        string whole = s.Text.Normalize(form);
        var b = new NormalizedBuilder(whole.Length);
        var sb = new StringBuilder(whole.Length);
        string t = s.Text;
        int i = 0;
        while (i < t.Length)
        {
            int j = i;
            CharClass.CodePointAt(t, j, out int l0);
            j += l0;
            while (j < t.Length)
            {
                int cp = CharClass.CodePointAt(t, j, out int l);
                var cat = CharUnicodeInfo.GetUnicodeCategory(cp);
                if (cat is not (UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark)) break;
                j += l;
            }
            string chunk = t[i..j].Normalize(form);
            sb.Append(chunk);
            b.Append(chunk, s.StartAt(i), s.EndAt(j - 1));
            i = j;
        }
        if (sb.ToString() == whole) return b.Build(s);
        // Compositions across clusters (e.g. Hangul jamo): align the whole output to the whole input.
        var w = new NormalizedBuilder(whole.Length);
        if (t.Length > 0) w.Append(whole, s.StartAt(0), s.EndAt(t.Length - 1));
        return w.Build(s);
    }
}

internal sealed class LowercaseNormalizer : INormalizer
{
    public NormalizedString Normalize(NormalizedString s) => Normalizers.MapRunes(s, Lower);

    /// <summary>Rust <c>char::to_lowercase</c> (full mapping: U+0130 gives two chars).</summary>
    public static string? Lower(int cp)
    {
        if (cp == 0x130) return "i\u0307";
        var r = new Rune(cp);
        var l = Rune.ToLowerInvariant(r);
        return l == r ? null : l.ToString();
    }
}

internal sealed class StripAccentsNormalizer : INormalizer
{
    public NormalizedString Normalize(NormalizedString s) =>
        Normalizers.MapRunes(s, cp => CharUnicodeInfo.GetUnicodeCategory(cp) == UnicodeCategory.NonSpacingMark ? "" : null);
}

internal sealed class StripNormalizer(bool left, bool right) : INormalizer
{
    public NormalizedString Normalize(NormalizedString s)
    {
        int a = 0, b = s.Length;
        if (left) while (a < b && char.IsWhiteSpace(s.Text[a])) a++;
        if (right) while (b > a && char.IsWhiteSpace(s.Text[b - 1])) b--;
        return a == 0 && b == s.Length ? s : s.Slice(a, b);
    }
}

internal sealed class PrependNormalizer(string prepend) : INormalizer
{
    public string Prepend => prepend;

    public NormalizedString Normalize(NormalizedString s)
    {
        if (s.Length == 0) return s;
        var b = new NormalizedBuilder(s.Length + prepend.Length);
        b.Append(prepend, s.StartAt(0), s.EndAt(0));
        b.AppendFrom(s, 0, s.Length);
        return b.Build(s);
    }
}

internal sealed class ReplaceNormalizer(Pattern pattern, string content) : INormalizer
{
    public NormalizedString Normalize(NormalizedString s)
    {
        var matches = pattern.Matches(s.Text);
        if (matches.Count == 0) return s;
        var b = new NormalizedBuilder(s.Length);
        int prev = 0;
        foreach (var (ms, me) in matches)
        {
            b.AppendFrom(s, prev, ms);
            if (content.Length == me - ms)
            {
                for (int k = 0; k < content.Length; k++) b.Append(content[k], s.StartAt(ms + k), s.EndAt(ms + k));
            }
            else if (content.Length > 0)
            {
                b.Append(content, s.StartAt(ms), s.EndAt(me - 1));
            }
            prev = me;
        }
        b.AppendFrom(s, prev, s.Length);
        return b.Build(s);
    }
}

internal sealed class BertNormalizer(bool cleanText, bool handleChineseChars, bool? stripAccents, bool lowercase) : INormalizer
{
    public NormalizedString Normalize(NormalizedString s)
    {
        if (cleanText)
        {
            s = Normalizers.MapRunes(s, cp =>
                cp == 0 || cp == 0xFFFD || CharClass.IsControl(cp) ? ""
                : cp != ' ' && (cp is '\t' or '\n' or '\r' || CharClass.IsWhitespace(cp)) ? " " : null);
        }
        if (handleChineseChars)
        {
            var b = new NormalizedBuilder(s.Length + 8);
            for (int i = 0; i < s.Length;)
            {
                var (os, oe, len) = s.RuneAt(i);
                int cp = CharClass.CodePointAt(s.Text, i, out _);
                if (CharClass.IsChineseChar(cp))
                {
                    b.Append(' ', os, oe);
                    b.AppendFrom(s, i, i + len);
                    b.Append(' ', os, oe);
                }
                else b.AppendFrom(s, i, i + len);
                i += len;
            }
            s = b.Build(s);
        }
        if (stripAccents ?? lowercase)
        {
            s = new UnicodeNormalizer(NormalizationForm.FormD).Normalize(s);
            s = new StripAccentsNormalizer().Normalize(s);
        }
        if (lowercase) s = new LowercaseNormalizer().Normalize(s);
        return s;
    }
}

/// <summary>A tokenizer.json pattern: <c>{"String": "..."}</c> (literal) or <c>{"Regex": "..."}</c>.</summary>
internal sealed class Pattern
{
    private readonly string? _literal;
    private readonly Regex? _regex;

    private Pattern(string? literal, Regex? regex)
    {
        _literal = literal;
        _regex = regex;
    }

    public static Pattern Literal(string s) => new(s, null);

    public static Pattern FromJson(JsonNode? node, string where)
    {
        if (node is JsonObject o)
        {
            if (o["String"] is JsonValue sv) return new Pattern(sv.GetValue<string>(), null);
            if (o["Regex"] is JsonValue rv)
            {
                string re = rv.GetValue<string>();
                try
                {
                    return new Pattern(null, new Regex(re, RegexOptions.Compiled | RegexOptions.CultureInvariant));
                }
                catch (ArgumentException e)
                {
                    throw new NotSupportedException($"{where}: regex '{re}' is not supported by .NET: {e.Message}", e);
                }
            }
        }
        throw new InvalidDataException($"{where}: expected {{\"String\": ...}} or {{\"Regex\": ...}}, got {node?.ToJsonString() ?? "null"}");
    }

    /// <summary>Non-empty, non-overlapping matches, left to right.</summary>
    public List<(int Start, int End)> Matches(string text)
    {
        var list = new List<(int, int)>();
        if (_literal is not null)
        {
            if (_literal.Length == 0) return list;
            int i = 0;
            while ((i = text.IndexOf(_literal, i, StringComparison.Ordinal)) >= 0)
            {
                list.Add((i, i + _literal.Length));
                i += _literal.Length;
            }
            return list;
        }
        foreach (var (s, e) in RegexUtil.Matches(_regex!, text))
            if (e > s) list.Add((s, e));
        return list;
    }

    public string Replace(string text, string content)
    {
        if (_literal is not null) return _literal.Length == 0 ? text : text.Replace(_literal, content, StringComparison.Ordinal);
        return _regex!.Replace(text, content.Replace("$", "$$", StringComparison.Ordinal));
    }
}

/// <summary>
/// Regex matching with HF (Oniguruma) semantics on code points. .NET regexes see a character outside the BMP as
/// two surrogates (category Cs), so \p{L}, \p{N}, {1,3} counts etc. would differ from HF for, e.g., CJK extension B
/// ideographs or mathematical digits. When the text has surrogate pairs we match on a stand-in string with one BMP
/// character of the same general category per code point, and map the match positions back.
/// </summary>
internal static class RegexUtil
{
    public static IEnumerable<(int Start, int End)> Matches(Regex re, string text)
    {
        bool hasSurrogates = false;
        foreach (char c in text) if (char.IsSurrogate(c)) { hasSurrogates = true; break; }
        if (!hasSurrogates)
        {
            for (var m = re.Match(text); m.Success; m = m.NextMatch())
                yield return (m.Index, m.Index + m.Length);
            yield break;
        }
        var sb = new StringBuilder(text.Length);
        var map = new List<int>(text.Length + 1); // stand-in index -> UTF-16 index in text
        for (int i = 0; i < text.Length;)
        {
            map.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                sb.Append(StandIn(char.ConvertToUtf32(text[i], text[i + 1])));
                i += 2;
            }
            else sb.Append(text[i++]);
        }
        map.Add(text.Length);
        string subject = sb.ToString();
        for (var m = re.Match(subject); m.Success; m = m.NextMatch())
            yield return (map[m.Index], map[m.Index + m.Length]);
    }

    /// <summary>A BMP character with the general category of <paramref name="cp"/> (not one that patterns spell literally).</summary>
    private static char StandIn(int cp) => CharUnicodeInfo.GetUnicodeCategory(cp) switch
    {
        UnicodeCategory.UppercaseLetter => 'X',
        UnicodeCategory.LowercaseLetter => 'x',
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u05D0',
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '0',
        UnicodeCategory.LetterNumber => '\u2160',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.MathSymbol => '\u00B1',
        UnicodeCategory.CurrencySymbol => '\u00A2',
        UnicodeCategory.ModifierSymbol => '\u02D8',
        UnicodeCategory.OtherSymbol => '\u00A9',
        UnicodeCategory.ConnectorPunctuation => '\u203F',
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\u00A1',
        UnicodeCategory.Format => '\u200B',
        UnicodeCategory.PrivateUse => '\uE000',
        _ => '\u0378', // unassigned
    };
}
