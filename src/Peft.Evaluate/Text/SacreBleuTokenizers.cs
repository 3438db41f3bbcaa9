using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Peft.Evaluate.Text;

/// <summary>
/// The sacrebleu 2.x tokenizers by name: <c>"13a"</c> (mteval-v13a, the default), <c>"intl"</c> (mteval-v14
/// international: split Unicode punctuation and symbols), <c>"zh"</c> (every CJK character its own token, then 13a
/// rules), <c>"char"</c> (every character its own token) and <c>"none"</c>. Each returns the tokens joined by one space.
/// </summary>
internal static class SacreBleuTokenizers
{
    /// <summary>The names accepted by <see cref="Get"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = ["13a", "intl", "zh", "char", "none"];

    /// <summary>The tokenizer function for a sacrebleu tokenizer name.</summary>
    public static Func<string, string> Get(string name) => name switch
    {
        "13a" => Tokenize13a,
        "intl" => TokenizeIntl,
        "zh" => TokenizeZh,
        "char" => TokenizeChar,
        "none" => s => s,
        _ => throw new ArgumentException(
            $"Unknown sacrebleu tokenizer '{name}'. Available: [{string.Join(", ", Names)}] (ja-mecab, ko-mecab, spm and flores are not implemented).", nameof(name)),
    };

    // The language-dependent part of mteval-v13a (sacrebleu TokenizerRegexp), applied in order.
    private static readonly (Regex Pattern, string Replacement)[] RegexpRules =
    [
        // split the ASCII symbols { | } ~ [ \ ] ^ _ ` space ! " # $ % & ( ) * + : ; < = > ? @ /
        (new Regex(@"([\{-~\[-`\x20-&\(-\+:-@/])", RegexOptions.CultureInvariant), " $1 "),
        // a period or comma not preceded by a digit
        (new Regex(@"([^0-9])([\.,])", RegexOptions.CultureInvariant), "$1 $2 "),
        // a period or comma not followed by a digit
        (new Regex(@"([\.,])([^0-9])", RegexOptions.CultureInvariant), " $1 $2"),
        // a dash preceded by a digit
        (new Regex(@"([0-9])(-)", RegexOptions.CultureInvariant), "$1 $2 "),
    ];

    /// <summary>sacrebleu's <c>TokenizerRegexp</c>: the rules above, then whitespace collapsed.</summary>
    internal static string PostTokenize(string line)
    {
        foreach (var (pattern, replacement) in RegexpRules) line = pattern.Replace(line, replacement);
        return string.Join(' ', PythonText.Split(line));
    }

    /// <summary>sacrebleu <c>Tokenizer13a</c>.</summary>
    public static string Tokenize13a(string line)
    {
        line = line.Replace("<skipped>", "").Replace("-\n", "").Replace("\n", " ");
        if (line.Contains('&'))
            line = line.Replace("&quot;", "\"").Replace("&amp;", "&").Replace("&lt;", "<").Replace("&gt;", ">");
        return PostTokenize(" " + line + " ");
    }

    /// <summary>sacrebleu <c>TokenizerV14International</c>, over code points with Unicode general categories.</summary>
    public static string TokenizeIntl(string line)
    {
        var cps = PythonText.CodePoints(line);
        // (\P{N})(\p{P}) -> "\1 \2 "
        cps = SubstitutePairs(cps, (a, b) => !IsNumber(a) && IsPunctuation(b), (a, b) => [a, ' ', b, ' ']);
        // (\p{P})(\P{N}) -> " \1 \2"
        cps = SubstitutePairs(cps, (a, b) => IsPunctuation(a) && !IsNumber(b), (a, b) => [' ', a, ' ', b]);
        // (\p{S}) -> " \1 "
        var sb = new StringBuilder(line.Length * 2);
        foreach (var cp in cps)
        {
            if (IsSymbol(cp)) { sb.Append(' '); PythonText.AppendCodePoint(sb, cp); sb.Append(' '); }
            else PythonText.AppendCodePoint(sb, cp);
        }
        return string.Join(' ', PythonText.Split(sb.ToString()));
    }

    /// <summary>A regex <c>sub</c> of a two-character pattern: scan left to right, non-overlapping.</summary>
    private static int[] SubstitutePairs(int[] cps, Func<int, int, bool> match, Func<int, int, int[]> replace)
    {
        var output = new List<int>(cps.Length * 2);
        int i = 0;
        while (i < cps.Length)
        {
            if (i + 1 < cps.Length && match(cps[i], cps[i + 1]))
            {
                output.AddRange(replace(cps[i], cps[i + 1]));
                i += 2;
            }
            else output.Add(cps[i++]);
        }
        return output.ToArray();
    }

    private static UnicodeCategory Category(int cp) =>
        Rune.IsValid(cp) ? Rune.GetUnicodeCategory(new Rune(cp)) : UnicodeCategory.Surrogate;

    private static bool IsNumber(int cp) => Category(cp) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    private static bool IsPunctuation(int cp) => Category(cp) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
        or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
        or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;

    private static bool IsSymbol(int cp) => Category(cp) is UnicodeCategory.MathSymbol or UnicodeCategory.CurrencySymbol
        or UnicodeCategory.ModifierSymbol or UnicodeCategory.OtherSymbol;

    // sacrebleu tokenizer_zh._UCODE_RANGES, compared the way Python compares one-character strings with them. Two entries
    // are written there as '\u20000'..'\u2a6d6' and '\u2f800'..'\u2fa1d', which Python reads as two-character strings
    // ('\u2000' + '0', ...): a single character c satisfies '\u2000'+'0' <= c only when c > U+2000, and c <= '\u2a6d'+'6'
    // when c <= U+2A6D. So those entries cover U+2001..U+2A6D and U+2F81..U+2FA1 (not CJK Extension B); we keep that.
    private static readonly (int Lo, int Hi)[] ZhRanges =
    [
        (0x3400, 0x4DB5), (0x4E00, 0x9FA5), (0x9FA6, 0x9FBB), (0xF900, 0xFA2D), (0xFA30, 0xFA6A), (0xFA70, 0xFAD9),
        (0x2001, 0x2A6D), (0x2F81, 0x2FA1),
        (0xFF00, 0xFFEF), (0x2E80, 0x2EFF), (0x3000, 0x303F), (0x31C0, 0x31EF), (0x2F00, 0x2FDF), (0x2FF0, 0x2FFF),
        (0x3100, 0x312F), (0x31A0, 0x31BF), (0xFE10, 0xFE1F), (0xFE30, 0xFE4F), (0x2600, 0x26FF), (0x2700, 0x27BF),
        (0x3200, 0x32FF), (0x3300, 0x33FF),
    ];

    internal static bool IsZhChar(int cp)
    {
        foreach (var (lo, hi) in ZhRanges)
            if (cp >= lo && cp <= hi) return true;
        return false;
    }

    /// <summary>sacrebleu <c>TokenizerZh</c>: strip, surround every Chinese character with spaces, then the 13a rules.</summary>
    public static string TokenizeZh(string line)
    {
        line = PythonText.Strip(line);
        var sb = new StringBuilder(line.Length * 3);
        foreach (var cp in PythonText.CodePoints(line))
        {
            if (IsZhChar(cp)) { sb.Append(' '); PythonText.AppendCodePoint(sb, cp); sb.Append(' '); }
            else PythonText.AppendCodePoint(sb, cp);
        }
        return PostTokenize(sb.ToString());
    }

    /// <summary>sacrebleu <c>TokenizerChar</c>: every code point (spaces included) joined by a space.</summary>
    public static string TokenizeChar(string line)
    {
        var starts = PythonText.CodePointStarts(line);
        var sb = new StringBuilder(line.Length * 2);
        for (int k = 0; k + 1 < starts.Length; k++)
        {
            if (k > 0) sb.Append(' ');
            sb.Append(line, starts[k], starts[k + 1] - starts[k]);
        }
        return sb.ToString();
    }
}
