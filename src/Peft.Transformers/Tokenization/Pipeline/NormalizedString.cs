using System.Text;

namespace Peft.Transformers.Tokenization.Pipeline;

// Ours (not ML.Tokenizers): HF tokenizers' NormalizedString keeps, for every normalized byte, the range of the
// original text it came from, so offsets survive normalization and pre-tokenization. ML.Tokenizers' normalizers
// return a plain string without alignments, so they cannot give HF's offsets. We keep the alignment per UTF-16
// unit (ranges in UTF-16 units of the caller's string), which is what .NET callers slice with.

/// <summary>A piece of normalized text with the original-text range of every UTF-16 unit.</summary>
internal sealed class NormalizedString
{
    private readonly int[] _start;
    private readonly int[] _end;

    public NormalizedString(string text, int[] start, int[] end, int origStart, int origEnd)
    {
        Text = text;
        _start = start;
        _end = end;
        OrigStart = origStart;
        OrigEnd = origEnd;
    }

    /// <summary>The normalized text.</summary>
    public string Text { get; }

    /// <summary>Start of the original range covered by this piece (used as anchor when empty).</summary>
    public int OrigStart { get; }

    /// <summary>End of the original range covered by this piece.</summary>
    public int OrigEnd { get; }

    public int Length => Text.Length;

    public static NormalizedString FromOriginal(string text, int offset = 0)
    {
        var s = new int[text.Length];
        var e = new int[text.Length];
        for (int i = 0; i < text.Length; i++) { s[i] = offset + i; e[i] = offset + i + 1; }
        return new NormalizedString(text, s, e, offset, offset + text.Length);
    }

    public int StartAt(int i) => _start[i];
    public int EndAt(int i) => _end[i];

    /// <summary>Original range of the normalized range [a, b) (HF: convert_offsets of Range::Normalized).</summary>
    public (int Start, int End) ToOriginal(int a, int b)
    {
        if (a < b) return (_start[a], _end[b - 1]);
        int anchor = a < Text.Length ? _start[a] : (a > 0 ? _end[a - 1] : OrigStart);
        return (anchor, anchor);
    }

    public NormalizedString Slice(int a, int b)
    {
        var (os, oe) = ToOriginal(a, b);
        return new NormalizedString(Text.Substring(a, b - a), _start[a..b], _end[a..b], os, oe);
    }

    /// <summary>Original range of the code point (or lone unit) at <paramref name="i"/>, and its UTF-16 length.</summary>
    public (int Start, int End, int Len) RuneAt(int i)
    {
        int len = char.IsHighSurrogate(Text[i]) && i + 1 < Text.Length && char.IsLowSurrogate(Text[i + 1]) ? 2 : 1;
        return (_start[i], _end[i + len - 1], len);
    }
}

/// <summary>Builds a <see cref="NormalizedString"/> piece by piece, each appended text aligned to an original range.</summary>
internal sealed class NormalizedBuilder
{
    private readonly StringBuilder _sb;
    private readonly List<int> _start;
    private readonly List<int> _end;

    public NormalizedBuilder(int capacity)
    {
        _sb = new StringBuilder(capacity);
        _start = new List<int>(capacity);
        _end = new List<int>(capacity);
    }

    public void Append(ReadOnlySpan<char> text, int origStart, int origEnd)
    {
        _sb.Append(text);
        for (int i = 0; i < text.Length; i++) { _start.Add(origStart); _end.Add(origEnd); }
    }

    public void Append(char c, int origStart, int origEnd)
    {
        _sb.Append(c);
        _start.Add(origStart);
        _end.Add(origEnd);
    }

    /// <summary>Copies units [a, b) of <paramref name="src"/> with their alignments.</summary>
    public void AppendFrom(NormalizedString src, int a, int b)
    {
        _sb.Append(src.Text, a, b - a);
        for (int i = a; i < b; i++) { _start.Add(src.StartAt(i)); _end.Add(src.EndAt(i)); }
    }

    public NormalizedString Build(NormalizedString from) =>
        new(_sb.ToString(), _start.ToArray(), _end.ToArray(), from.OrigStart, from.OrigEnd);
}

/// <summary>One token produced by a model: id, value and range inside the piece the model was given.</summary>
internal readonly record struct ModelToken(int Id, string Value, int Start, int End);

/// <summary>A pre-tokenized split: normalized text, and its tokens once assigned (added tokens are assigned early).</summary>
internal sealed class Split
{
    public Split(NormalizedString normalized, List<ModelToken>? tokens = null)
    {
        Normalized = normalized;
        Tokens = tokens;
    }

    public NormalizedString Normalized { get; }
    public List<ModelToken>? Tokens { get; set; }
}

/// <summary>Character classes as HF tokenizers (Rust <c>char</c> methods) define them.</summary>
internal static class CharClass
{
    /// <summary>Rust <c>char::is_whitespace</c> (White_Space property); equals .NET's set.</summary>
    public static bool IsWhitespace(int cp) => cp < 0x10000 && char.IsWhiteSpace((char)cp);

    public static bool IsAsciiPunctuation(int cp) =>
        cp is (>= 0x21 and <= 0x2F) or (>= 0x3A and <= 0x40) or (>= 0x5B and <= 0x60) or (>= 0x7B and <= 0x7E);

    /// <summary>Unicode punctuation categories Pc Pd Ps Pe Pi Pf Po.</summary>
    public static bool IsUnicodePunctuation(int cp)
    {
        var cat = System.Globalization.CharUnicodeInfo.GetUnicodeCategory(cp);
        return cat is System.Globalization.UnicodeCategory.ConnectorPunctuation
            or System.Globalization.UnicodeCategory.DashPunctuation
            or System.Globalization.UnicodeCategory.OpenPunctuation
            or System.Globalization.UnicodeCategory.ClosePunctuation
            or System.Globalization.UnicodeCategory.InitialQuotePunctuation
            or System.Globalization.UnicodeCategory.FinalQuotePunctuation
            or System.Globalization.UnicodeCategory.OtherPunctuation;
    }

    /// <summary>HF <c>is_bert_punc</c> / Punctuation pre-tokenizer: ASCII punctuation or Unicode P*.</summary>
    public static bool IsPunctuation(int cp) => IsAsciiPunctuation(cp) || IsUnicodePunctuation(cp);

    /// <summary>Rust <c>char::is_numeric</c>: Nd, Nl, No.</summary>
    public static bool IsNumeric(int cp)
    {
        var cat = System.Globalization.CharUnicodeInfo.GetUnicodeCategory(cp);
        return cat is System.Globalization.UnicodeCategory.DecimalDigitNumber
            or System.Globalization.UnicodeCategory.LetterNumber
            or System.Globalization.UnicodeCategory.OtherNumber;
    }

    /// <summary>HF BertNormalizer <c>is_control</c>: not \t \n \r, and category Cc, Cf, Cn, Co (Rust is_other).</summary>
    public static bool IsControl(int cp)
    {
        if (cp is '\t' or '\n' or '\r') return false;
        var cat = System.Globalization.CharUnicodeInfo.GetUnicodeCategory(cp);
        return cat is System.Globalization.UnicodeCategory.Control
            or System.Globalization.UnicodeCategory.Format
            or System.Globalization.UnicodeCategory.OtherNotAssigned
            or System.Globalization.UnicodeCategory.PrivateUse
            or System.Globalization.UnicodeCategory.Surrogate;
    }

    /// <summary>HF BertNormalizer <c>is_chinese_char</c> (CJK ideograph blocks).</summary>
    public static bool IsChineseChar(int cp) =>
        cp is (>= 0x4E00 and <= 0x9FFF) or (>= 0x3400 and <= 0x4DBF) or (>= 0x20000 and <= 0x2A6DF)
            or (>= 0x2A700 and <= 0x2B73F) or (>= 0x2B740 and <= 0x2B81F) or (>= 0x2B920 and <= 0x2CEAF)
            or (>= 0xF900 and <= 0xFAFF) or (>= 0x2F800 and <= 0x2FA1F);

    public static int CodePointAt(string s, int i, out int len)
    {
        if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
        {
            len = 2;
            return char.ConvertToUtf32(s[i], s[i + 1]);
        }
        len = 1;
        return s[i];
    }
}
