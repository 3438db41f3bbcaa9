using System.Text;

namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>One piece of a template: literal text, or the inside of a <c>{{ }}</c> / <c>{% %}</c> tag (comments are dropped).</summary>
internal readonly record struct Segment(SegmentKind Kind, string Text, int Line);

internal enum SegmentKind { Text, Output, Statement, Comment }

/// <summary>
/// Splits a template into text and tags with jinja2's whitespace rules as transformers configures them
/// (<c>trim_blocks=True, lstrip_blocks=True</c>): <c>{%-</c>/<c>-%}</c> (and the <c>{{</c>, <c>{#</c> forms) strip all
/// whitespace on that side; without '-', a block or comment tag removes the one newline after it (trim_blocks) and the
/// spaces/tabs before it when only they precede it on its line (lstrip_blocks; <c>{%+</c> turns that off).
/// </summary>
internal static class JinjaLexer
{
    private sealed record Raw(SegmentKind Kind, string Text, int Line, bool StripLeft, bool StripRight, bool NoLstrip, bool IsBlock);

    public static List<Segment> Split(string source)
    {
        // jinja2 normalizes every newline to "\n" (text and string literals) and, with keep_trailing_newline off,
        // drops one newline at the very end of the template
        source = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (source.EndsWith('\n')) source = source[..^1];
        var raws = new List<Raw>();
        int pos = 0, line = 1;
        while (pos < source.Length)
        {
            int open = NextOpen(source, pos);
            if (open < 0) { raws.Add(new Raw(SegmentKind.Text, source[pos..], line, false, false, false, false)); break; }
            if (open > pos) raws.Add(new Raw(SegmentKind.Text, source[pos..open], line, false, false, false, false));
            line += Count(source, pos, open);
            char kind = source[open + 1];
            int start = open + 2;
            bool stripLeft = start < source.Length && source[start] == '-';
            bool noLstrip = start < source.Length && source[start] == '+';
            if (stripLeft || noLstrip) start++;
            string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
            int end = kind == '#' ? source.IndexOf(close, start, StringComparison.Ordinal) : FindClose(source, start, close);
            if (end < 0) throw new TemplateException($"line {line}: unclosed '{{{kind}' tag");
            bool stripRight = end > start && source[end - 1] == '-';
            var inner = source[start..(stripRight ? end - 1 : end)];
            if (kind == '{') raws.Add(new Raw(SegmentKind.Output, inner, line, stripLeft, stripRight, noLstrip, false));
            else if (kind == '%') raws.Add(new Raw(SegmentKind.Statement, inner, line, stripLeft, stripRight, noLstrip, true));
            else raws.Add(new Raw(SegmentKind.Comment, "", line, stripLeft, stripRight, noLstrip, true));
            line += Count(source, open, end);
            pos = end + 2;
        }
        return ApplyWhitespace(raws);
    }

    /// <summary>
    /// jinja2's lexer rules in order: a tag's right side decides how much of the following text it consumes (all
    /// whitespace for '-', one newline for a block/comment tag) and whether that text starts a line; a tag's left side
    /// strips the text before it ('-': all trailing whitespace; lstrip_blocks: spaces after the last newline, or all of it
    /// when the text starts a line).
    /// </summary>
    private static List<Segment> ApplyWhitespace(List<Raw> raws)
    {
        var result = new List<Segment>();
        string? text = null;
        int textLine = 0;
        bool lineStarting = true;
        Raw? previousTag = null;
        foreach (var r in raws)
        {
            if (r.Kind == SegmentKind.Text)
            {
                var t = r.Text;
                if (previousTag is { } p)
                {
                    if (p.StripRight)
                    {
                        int n = t.Length - t.TrimStart().Length;
                        lineStarting = n > 0 && t[n - 1] == '\n';
                        t = t[n..];
                    }
                    else if (p.IsBlock && t.StartsWith('\n')) { t = t[1..]; lineStarting = true; }
                    else lineStarting = false;
                }
                text = t;
                textLine = r.Line;
                previousTag = null;
                continue;
            }
            if (previousTag is not null) lineStarting = false;   // tag right after tag
            if (text is not null)
            {
                if (r.StripLeft) text = text.TrimEnd();
                else if (r.IsBlock && !r.NoLstrip)
                {
                    int lpos = text.LastIndexOf('\n') + 1;
                    if ((lpos > 0 || lineStarting) && lpos < text.Length && text.AsSpan(lpos).IndexOfAnyExcept(" \t\r\f\v") < 0)
                        text = text[..lpos];
                }
                if (text.Length > 0) result.Add(new Segment(SegmentKind.Text, text, textLine));
                text = null;
            }
            if (r.Kind is SegmentKind.Output or SegmentKind.Statement) result.Add(new Segment(r.Kind, r.Text, r.Line));
            previousTag = r;
        }
        if (text is not null && text.Length > 0) result.Add(new Segment(SegmentKind.Text, text, textLine));
        return result;
    }

    private static int NextOpen(string s, int from)
    {
        for (int i = s.IndexOf('{', from); i >= 0 && i + 1 < s.Length; i = s.IndexOf('{', i + 1))
            if (s[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>The closing delimiter outside string literals.</summary>
    private static int FindClose(string s, int from, string close)
    {
        char quote = '\0';
        for (int i = from; i < s.Length - 1; i++)
        {
            char c = s[i];
            if (quote != '\0')
            {
                if (c == '\\') i++;
                else if (c == quote) quote = '\0';
            }
            else if (c is '"' or '\'') quote = c;
            else if (c == close[0] && s[i + 1] == close[1]) return i;
        }
        return -1;
    }

    private static int Count(string s, int from, int to)
    {
        int n = 0;
        for (int i = from; i < to && i < s.Length; i++) if (s[i] == '\n') n++;
        return n;
    }
}
