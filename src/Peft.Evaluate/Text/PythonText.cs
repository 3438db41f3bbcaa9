using System.Text;

namespace Peft.Evaluate.Text;

/// <summary>
/// The Python <c>str</c> behaviours the reference tools rely on: <c>split()</c> on Python's whitespace set (which,
/// unlike <see cref="char.IsWhiteSpace(char)"/>, includes U+001C..U+001F), <c>strip()</c>/<c>rstrip()</c>,
/// <c>lower()</c>, and indexing by code point (Python strings index code points, not UTF-16 units). No Unicode
/// normalisation is applied anywhere, exactly as sacrebleu, rouge_score and HF evaluate do not normalise.
/// </summary>
internal static class PythonText
{
    /// <summary>Python's <c>str.isspace()</c> for one UTF-16 unit (every such character is in the BMP).</summary>
    public static bool IsSpace(char c) => c switch
    {
        >= '\t' and <= '\r' => true,
        >= '\x1c' and <= ' ' => true,
        '\x85' or '\xa0' or '\u1680' or '\u2028' or '\u2029' or '\u202f' or '\u205f' or '\u3000' => true,
        >= '\u2000' and <= '\u200a' => true,
        _ => false,
    };

    /// <summary>Python <c>s.split()</c>: runs of whitespace separate, no empty strings.</summary>
    public static List<string> Split(string s)
    {
        var parts = new List<string>();
        int i = 0;
        while (i < s.Length)
        {
            while (i < s.Length && IsSpace(s[i])) i++;
            int start = i;
            while (i < s.Length && !IsSpace(s[i])) i++;
            if (i > start) parts.Add(s[start..i]);
        }
        return parts;
    }

    /// <summary>Python <c>s.rstrip()</c>.</summary>
    public static string RStrip(string s)
    {
        int end = s.Length;
        while (end > 0 && IsSpace(s[end - 1])) end--;
        return s[..end];
    }

    /// <summary>Python <c>s.strip()</c>.</summary>
    public static string Strip(string s)
    {
        int start = 0;
        while (start < s.Length && IsSpace(s[start])) start++;
        return RStrip(s[start..]);
    }

    /// <summary>
    /// Python <c>s.lower()</c>: the invariant lowercase mapping plus Python's two context rules that .NET lacks:
    /// U+0130 (İ) becomes "i̇" (two code points) and a capital sigma at the end of a word becomes final sigma ς
    /// (Unicode Final_Sigma: preceded by a letter, not followed by one; case-ignorable characters are not skipped here).
    /// </summary>
    public static string Lower(string s)
    {
        if (s.IndexOf('\u0130') >= 0) s = s.Replace("\u0130", "i\u0307");
        var lower = s.ToLowerInvariant();
        if (s.IndexOf('\u03a3') < 0) return lower;
        var chars = lower.ToCharArray();
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] != '\u03a3') continue;
            bool before = i > 0 && char.IsLetter(s[i - 1]);
            bool after = i + 1 < s.Length && char.IsLetter(s[i + 1]);
            if (before && !after) chars[i] = '\u03c2';
        }
        return new string(chars);
    }

    /// <summary>Start offsets (UTF-16) of each code point plus the end offset; code point k is <c>s[starts[k]..starts[k+1]]</c>.</summary>
    public static int[] CodePointStarts(string s)
    {
        var starts = new List<int>(s.Length + 1);
        for (int i = 0; i < s.Length; i++)
        {
            starts.Add(i);
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) i++;
        }
        starts.Add(s.Length);
        return starts.ToArray();
    }

    /// <summary>The code points of <paramref name="s"/> (lone surrogates kept as their own value).</summary>
    public static int[] CodePoints(string s)
    {
        var cps = new List<int>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                cps.Add(char.ConvertToUtf32(s[i], s[i + 1]));
                i++;
            }
            else cps.Add(s[i]);
        }
        return cps.ToArray();
    }

    /// <summary>Appends one code point as UTF-16.</summary>
    public static void AppendCodePoint(StringBuilder sb, int cp)
    {
        if (cp >= 0x10000) sb.Append(char.ConvertFromUtf32(cp));
        else sb.Append((char)cp);
    }

    /// <summary>Python's <c>string.punctuation</c>.</summary>
    public const string AsciiPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
}
