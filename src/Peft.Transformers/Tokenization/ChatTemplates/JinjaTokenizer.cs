using System.Globalization;
using System.Text;

namespace Peft.Transformers.Tokenization.ChatTemplates;

internal enum TokKind { Name, String, Int, Float, Op, End }

internal readonly record struct Tok(TokKind Kind, string Text, object? Value = null);

/// <summary>Tokens of one tag's inside: names, string/int/float literals, operators and punctuation.</summary>
internal static class JinjaTokenizer
{
    private static readonly string[] Ops = ["**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "|", ".", ",", ":", "(", ")", "[", "]", "{", "}"];

    public static List<Tok> Tokenize(string s, int line)
    {
        var toks = new List<Tok>();
        int i = 0;
        while (i < s.Length)
        {
            char c = s[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (char.IsLetter(c) || c == '_')
            {
                int j = i + 1;
                while (j < s.Length && (char.IsLetterOrDigit(s[j]) || s[j] == '_')) j++;
                toks.Add(new Tok(TokKind.Name, s[i..j]));
                i = j;
                continue;
            }
            if (char.IsAsciiDigit(c))
            {
                int j = i;
                while (j < s.Length && (char.IsAsciiDigit(s[j]) || s[j] == '_')) j++;
                bool isFloat = false;
                if (j + 1 < s.Length && s[j] == '.' && char.IsAsciiDigit(s[j + 1]))
                {
                    isFloat = true;
                    j++;
                    while (j < s.Length && char.IsAsciiDigit(s[j])) j++;
                }
                if (j < s.Length && (s[j] == 'e' || s[j] == 'E') && j + 1 < s.Length && (char.IsAsciiDigit(s[j + 1]) || s[j + 1] is '+' or '-'))
                {
                    isFloat = true;
                    j += 2;
                    while (j < s.Length && char.IsAsciiDigit(s[j])) j++;
                }
                var text = s[i..j].Replace("_", "");
                // Python's ints are unbounded, ours are Int64: a larger literal (or a malformed one, "1e+") is a template error
                if (isFloat && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double d))
                    toks.Add(new Tok(TokKind.Float, text, d));
                else if (!isFloat && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long n))
                    toks.Add(new Tok(TokKind.Int, text, n));
                else
                    throw new TemplateException($"line {line}: number literal '{s[i..j]}' is malformed or outside the 64-bit range");
                i = j;
                continue;
            }
            if (c is '"' or '\'')
            {
                var (value, next) = ReadString(s, i, line);
                toks.Add(new Tok(TokKind.String, value, value));
                i = next;
                continue;
            }
            var op = Ops.FirstOrDefault(o => string.CompareOrdinal(s, i, o, 0, o.Length) == 0)
                ?? throw new TemplateException($"line {line}: unexpected character '{c}' in \"{s.Trim()}\"");
            toks.Add(new Tok(TokKind.Op, op));
            i += op.Length;
        }
        toks.Add(new Tok(TokKind.End, ""));
        return toks;
    }

    /// <summary>A Python string literal (jinja2 unescapes with Python's rules).</summary>
    private static (string, int) ReadString(string s, int start, int line)
    {
        char q = s[start];
        var sb = new StringBuilder();
        int i = start + 1;
        while (i < s.Length && s[i] != q)
        {
            char c = s[i];
            if (c == '\\' && i + 1 < s.Length)
            {
                char e = s[++i];
                switch (e)
                {
                    case 'n': sb.Append('\n'); break;
                    case 't': sb.Append('\t'); break;
                    case 'r': sb.Append('\r'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'v': sb.Append('\v'); break;
                    case 'a': sb.Append('\a'); break;
                    case '0': sb.Append('\0'); break;
                    case '\\': sb.Append('\\'); break;
                    case '\'': sb.Append('\''); break;
                    case '"': sb.Append('"'); break;
                    case '\n': break;
                    case 'x': sb.Append((char)Convert.ToInt32(s.Substring(i + 1, 2), 16)); i += 2; break;
                    case 'u': sb.Append((char)Convert.ToInt32(s.Substring(i + 1, 4), 16)); i += 4; break;
                    case 'U': sb.Append(char.ConvertFromUtf32(Convert.ToInt32(s.Substring(i + 1, 8), 16))); i += 8; break;
                    default: sb.Append('\\').Append(e); break;
                }
                i++;
                continue;
            }
            sb.Append(c);
            i++;
        }
        if (i >= s.Length) throw new TemplateException($"line {line}: unterminated string literal");
        return (sb.ToString(), i + 1);
    }
}
