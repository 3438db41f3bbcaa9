namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>
/// Parses segments into statements (<c>if/elif/else</c>, <c>for ... in ... [if ...]</c> with <c>else</c>, <c>set</c>
/// incl. <c>ns.attr</c> and block set, <c>macro</c>, <c>break</c>/<c>continue</c>, transformers' <c>generation</c> block)
/// and expressions with jinja2's precedence: <c>if-else</c> &lt; or &lt; and &lt; not &lt; comparisons/in &lt; + - &lt; ~ &lt;
/// * / // % &lt; ** &lt; unary &lt; postfix (. [] ()) with filters and <c>is</c> tests.
/// </summary>
internal sealed class JinjaParser
{
    private readonly List<Segment> _segments;
    private int _seg;

    private JinjaParser(List<Segment> segments) => _segments = segments;

    public static IReadOnlyList<Node> Parse(string source)
    {
        var p = new JinjaParser(JinjaLexer.Split(source));
        var body = p.ParseBody([], out var end);
        if (end is not null) throw new TemplateException($"line {end.Value.Line}: unexpected '{{% {end.Value.Keyword} %}}'");
        return body;
    }

    private readonly record struct EndTag(string Keyword, ExprReader Reader, int Line);

    /// <summary>Nodes until one of <paramref name="terminators"/> (returned in <paramref name="end"/>) or the end.</summary>
    private List<Node> ParseBody(string[] terminators, out EndTag? end)
    {
        JinjaStack.Check(_seg < _segments.Count ? _segments[_seg].Line : 0);
        var nodes = new List<Node>();
        while (_seg < _segments.Count)
        {
            var s = _segments[_seg++];
            switch (s.Kind)
            {
                case SegmentKind.Text: nodes.Add(new TextNode(s.Text, s.Line)); break;
                case SegmentKind.Output:
                {
                    var r = new ExprReader(JinjaTokenizer.Tokenize(s.Text, s.Line), s.Line);
                    nodes.Add(new OutputNode(r.ParseExpression(), s.Line));
                    r.ExpectEnd();
                    break;
                }
                case SegmentKind.Statement:
                {
                    var r = new ExprReader(JinjaTokenizer.Tokenize(s.Text, s.Line), s.Line);
                    var kw = r.NextName();
                    if (terminators.Contains(kw)) { end = new EndTag(kw, r, s.Line); return nodes; }
                    nodes.Add(ParseStatement(kw, r, s.Line));
                    break;
                }
            }
        }
        if (terminators.Length > 0) throw new TemplateException($"unexpected end of template: expected '{{% {string.Join(" / ", terminators)} %}}'");
        end = null;
        return nodes;
    }

    private Node ParseStatement(string kw, ExprReader r, int line)
    {
        switch (kw)
        {
            case "if":
            {
                var branches = new List<(Expr, IReadOnlyList<Node>)>();
                var test = r.ParseExpression();
                r.ExpectEnd();
                IReadOnlyList<Node>? elseBody = null;
                while (true)
                {
                    var body = ParseBody(["elif", "else", "endif"], out var end);
                    branches.Add((test, body));
                    if (end!.Value.Keyword == "elif") { test = end.Value.Reader.ParseExpression(); end.Value.Reader.ExpectEnd(); continue; }
                    if (end.Value.Keyword == "else")
                    {
                        end.Value.Reader.ExpectEnd();
                        elseBody = ParseBody(["endif"], out _);
                    }
                    break;
                }
                return new IfNode(branches, elseBody, line);
            }
            case "for":
            {
                var targets = new List<string> { r.NextName() };
                while (r.TryOp(",")) targets.Add(r.NextName());
                r.ExpectName("in");
                var iterable = r.ParseOr();   // no conditional expression here: "if" starts the loop filter
                Expr? filter = r.TryName("if") ? r.ParseOr() : null;
                r.TryName("recursive");
                r.ExpectEnd();
                var body = ParseBody(["else", "endfor"], out var end);
                IReadOnlyList<Node>? elseBody = null;
                if (end!.Value.Keyword == "else") elseBody = ParseBody(["endfor"], out _);
                return new ForNode(targets, iterable, filter, body, elseBody, line);
            }
            case "set":
            {
                var targets = new List<string> { r.NextName() };
                string? attr = null;
                if (r.TryOp(".")) attr = r.NextName();
                while (r.TryOp(",")) targets.Add(r.NextName());
                if (r.TryOp("="))
                {
                    var value = r.ParseTupleOrExpression();
                    r.ExpectEnd();
                    return new SetNode(targets, attr, value, null, line);
                }
                r.ExpectEnd();
                return new SetNode(targets, attr, null, ParseBody(["endset"], out _), line);
            }
            case "macro":
            {
                var name = r.NextName();
                r.ExpectOp("(");
                var ps = new List<(string, Expr?)>();
                while (!r.TryOp(")"))
                {
                    var p = r.NextName();
                    Expr? def = r.TryOp("=") ? r.ParseExpression() : null;
                    ps.Add((p, def));
                    if (!r.TryOp(",")) { r.ExpectOp(")"); break; }
                }
                r.ExpectEnd();
                return new MacroNode(name, ps, ParseBody(["endmacro"], out _), line);
            }
            case "break": r.ExpectEnd(); return new LoopControlNode(true, line);
            case "continue": r.ExpectEnd(); return new LoopControlNode(false, line);
            case "generation": r.ExpectEnd(); return new BlockNode(ParseBody(["endgeneration"], out _), line);
            default: throw new TemplateException($"line {line}: unknown tag '{kw}'");
        }
    }
}

/// <summary>Recursive-descent expression parser over one tag's tokens.</summary>
internal sealed class ExprReader(List<Tok> toks, int line)
{
    private static readonly HashSet<string> Keywords = ["and", "or", "not", "in", "is", "if", "else", "recursive"];
    private int _i;

    private Tok Peek => toks[_i];

    public string NextName()
    {
        var t = toks[_i];
        if (t.Kind != TokKind.Name) throw Error($"expected a name, found '{t.Text}'");
        _i++;
        return t.Text;
    }

    public bool TryName(string name)
    {
        if (Peek.Kind == TokKind.Name && Peek.Text == name) { _i++; return true; }
        return false;
    }

    public void ExpectName(string name) { if (!TryName(name)) throw Error($"expected '{name}', found '{Peek.Text}'"); }

    public bool TryOp(string op)
    {
        if (Peek.Kind == TokKind.Op && Peek.Text == op) { _i++; return true; }
        return false;
    }

    public void ExpectOp(string op) { if (!TryOp(op)) throw Error($"expected '{op}', found '{Peek.Text}'"); }

    public void ExpectEnd() { if (Peek.Kind != TokKind.End) throw Error($"unexpected '{Peek.Text}'"); }

    private TemplateException Error(string what) => new($"line {line}: {what}");

    public Expr ParseTupleOrExpression()
    {
        var first = ParseExpression();
        if (Peek.Kind != TokKind.Op || Peek.Text != ",") return first;
        var items = new List<Expr> { first };
        while (TryOp(",") && Peek.Kind != TokKind.End) items.Add(ParseExpression());
        return new TupleExpr(items, line);
    }

    public Expr ParseExpression()
    {
        JinjaStack.Check(line);
        var e = ParseOr();
        if (TryName("if"))
        {
            var test = ParseOr();
            Expr? otherwise = TryName("else") ? ParseExpression() : null;
            return new Conditional(test, e, otherwise, line);
        }
        return e;
    }

    public Expr ParseOr()
    {
        var e = ParseAnd();
        while (TryName("or")) e = new Binary("or", e, ParseAnd(), line);
        return e;
    }

    private Expr ParseAnd()
    {
        var e = ParseNot();
        while (TryName("and")) e = new Binary("and", e, ParseNot(), line);
        return e;
    }

    private Expr ParseNot()
    {
        JinjaStack.Check(line);
        return TryName("not") ? new Unary("not", ParseNot(), line) : ParseCompare();
    }

    private Expr ParseCompare()
    {
        var e = ParseMath1();
        while (true)
        {
            if (Peek.Kind == TokKind.Op && Peek.Text is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                var op = toks[_i++].Text;
                e = new Binary(op, e, ParseMath1(), line);
            }
            else if (TryName("in")) e = new Binary("in", e, ParseMath1(), line);
            else if (Peek.Kind == TokKind.Name && Peek.Text == "not" && toks[_i + 1].Kind == TokKind.Name && toks[_i + 1].Text == "in")
            {
                _i += 2;
                e = new Binary("not in", e, ParseMath1(), line);
            }
            else return e;
        }
    }

    private Expr ParseMath1()
    {
        var e = ParseConcat();
        while (Peek.Kind == TokKind.Op && Peek.Text is "+" or "-")
        {
            var op = toks[_i++].Text;
            e = new Binary(op, e, ParseConcat(), line);
        }
        return e;
    }

    private Expr ParseConcat()
    {
        var e = ParseMath2();
        while (TryOp("~")) e = new Binary("~", e, ParseMath2(), line);
        return e;
    }

    private Expr ParseMath2()
    {
        var e = ParsePow();
        while (Peek.Kind == TokKind.Op && Peek.Text is "*" or "/" or "//" or "%")
        {
            var op = toks[_i++].Text;
            e = new Binary(op, e, ParsePow(), line);
        }
        return e;
    }

    private Expr ParsePow()
    {
        var e = ParseUnary(withFilter: true);
        while (TryOp("**")) e = new Binary("**", e, ParseUnary(withFilter: true), line);
        return e;
    }

    private Expr ParseUnary(bool withFilter)
    {
        JinjaStack.Check(line);
        Expr e;
        if (TryOp("-")) e = new Unary("-", ParseUnary(false), line);
        else if (TryOp("+")) e = new Unary("+", ParseUnary(false), line);
        else e = ParsePostfix(ParsePrimary());
        return withFilter ? ParseFilterAndTests(e) : e;
    }

    private Expr ParsePrimary()
    {
        var t = toks[_i++];
        switch (t.Kind)
        {
            case TokKind.String:
            {
                var s = (string)t.Value!;
                while (Peek.Kind == TokKind.String) s += (string)toks[_i++].Value!;   // adjacent literals concatenate
                return new Literal(s, line);
            }
            case TokKind.Int:
            case TokKind.Float: return new Literal(t.Value, line);
            case TokKind.Name:
                return t.Text switch
                {
                    "true" or "True" => new Literal(true, line),
                    "false" or "False" => new Literal(false, line),
                    "none" or "None" => new Literal(null, line),
                    _ => new Name(t.Text, line),
                };
            case TokKind.Op when t.Text == "(":
            {
                if (TryOp(")")) return new TupleExpr([], line);
                var first = ParseExpression();
                if (TryOp(")")) return first;
                var items = new List<Expr> { first };
                while (TryOp(","))
                {
                    if (Peek.Kind == TokKind.Op && Peek.Text == ")") break;
                    items.Add(ParseExpression());
                }
                ExpectOp(")");
                return new TupleExpr(items, line);
            }
            case TokKind.Op when t.Text == "[":
            {
                var items = new List<Expr>();
                while (!TryOp("]"))
                {
                    items.Add(ParseExpression());
                    if (!TryOp(",")) { ExpectOp("]"); break; }
                }
                return new ListExpr(items, line);
            }
            case TokKind.Op when t.Text == "{":
            {
                var items = new List<(Expr, Expr)>();
                while (!TryOp("}"))
                {
                    var k = ParseExpression();
                    ExpectOp(":");
                    items.Add((k, ParseExpression()));
                    if (!TryOp(",")) { ExpectOp("}"); break; }
                }
                return new DictExpr(items, line);
            }
            default: throw Error($"unexpected '{t.Text}'");
        }
    }

    private Expr ParsePostfix(Expr e)
    {
        while (true)
        {
            if (TryOp("."))
            {
                var t = toks[_i++];
                e = t.Kind is TokKind.Name or TokKind.Int ? new GetAttr(e, t.Text, line) : throw Error($"expected an attribute name after '.', found '{t.Text}'");
            }
            else if (TryOp("[")) { e = new GetItem(e, ParseSubscript(), line); ExpectOp("]"); }
            else if (TryOp("(")) { var (a, k) = ParseArgs(); e = new Call(e, a, k, line); }
            else return e;
        }
    }

    private Expr ParseSubscript()
    {
        Expr? start = null, stop = null, step = null;
        if (!(Peek.Kind == TokKind.Op && Peek.Text == ":")) start = ParseExpression();
        if (!TryOp(":")) return start!;
        if (!(Peek.Kind == TokKind.Op && Peek.Text is ":" or "]")) stop = ParseExpression();
        if (TryOp(":") && !(Peek.Kind == TokKind.Op && Peek.Text == "]")) step = ParseExpression();
        return new SliceExpr(start, stop, step, line);
    }

    /// <summary>Call arguments after '(' up to and including ')'.</summary>
    private (List<Expr>, List<(string, Expr)>) ParseArgs()
    {
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!TryOp(")"))
        {
            if (Peek.Kind == TokKind.Name && toks[_i + 1].Kind == TokKind.Op && toks[_i + 1].Text == "=")
            {
                var name = toks[_i].Text;
                _i += 2;
                kwargs.Add((name, ParseExpression()));
            }
            else args.Add(ParseExpression());
            if (!TryOp(",")) { ExpectOp(")"); break; }
        }
        return (args, kwargs);
    }

    private Expr ParseFilterAndTests(Expr e)
    {
        while (true)
        {
            if (TryOp("|"))
            {
                var name = NextName();
                while (TryOp(".")) name += "." + NextName();
                List<Expr> a = [];
                List<(string, Expr)> k = [];
                if (TryOp("(")) (a, k) = ParseArgs();
                e = ParsePostfix(new FilterExpr(e, name, a, k, line));
            }
            else if (TryName("is"))
            {
                bool negated = TryName("not");
                var name = NextName();
                var args = new List<Expr>();
                if (TryOp("(")) args = ParseArgs().Item1;
                else if (Peek.Kind is TokKind.String or TokKind.Int or TokKind.Float
                         || (Peek.Kind == TokKind.Name && !Keywords.Contains(Peek.Text)))
                    args.Add(ParsePostfix(ParsePrimary()));
                e = new TestExpr(e, name, negated, args, line);
            }
            else return e;
        }
    }
}
