using System.Text;

namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>Executes parsed statements and evaluates expressions with jinja2's semantics (see <see cref="Py"/>).</summary>
internal sealed class JinjaEvaluator
{
    private enum Flow { Normal, Break, Continue }

    private const int MaxDepth = 200;
    private int _depth;

    public void Render(IReadOnlyList<Node> nodes, Scope scope, StringBuilder output)
    {
        if (Exec(nodes, scope, output) != Flow.Normal) throw new TemplateException("'break' or 'continue' outside a loop");
    }

    private Flow Exec(IReadOnlyList<Node> nodes, Scope scope, StringBuilder sb)
    {
        foreach (var node in nodes)
        {
            var flow = ExecOne(node, scope, sb);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    // An error without a line (raise_exception, a value of the wrong type deep in a filter) gets its statement's line.
    private Flow ExecOne(Node node, Scope scope, StringBuilder sb)
    {
        try
        {
            return ExecNode(node, scope, sb);
        }
        catch (TemplateException e) when (e.Line == 0)
        {
            throw e.AtLine(node.Line);
        }
    }

    private Flow ExecNode(Node node, Scope scope, StringBuilder sb)
    {
        JinjaStack.Check(node.Line);
        switch (node)
        {
            case TextNode t: sb.Append(t.Text); return Flow.Normal;
            case OutputNode o: sb.Append(Py.Str(Eval(o.Value, scope))); return Flow.Normal;
            case IfNode i:
                foreach (var (test, body) in i.Branches)
                    if (Py.Truthy(Eval(test, scope))) return Exec(body, scope, sb);
                return i.Else is null ? Flow.Normal : Exec(i.Else, scope, sb);
            case ForNode f: return ExecFor(f, scope, sb);
            case SetNode s: ExecSet(s, scope); return Flow.Normal;
            case MacroNode m: scope.Set(m.MacroName, MakeMacro(m, scope)); return Flow.Normal;
            case LoopControlNode c: return c.IsBreak ? Flow.Break : Flow.Continue;
            case BlockNode b: return Exec(b.Body, scope, sb);
            default: throw new TemplateException($"line {node.Line}: unsupported node {node.GetType().Name}");
        }
    }

    private Flow ExecFor(ForNode f, Scope scope, StringBuilder sb)
    {
        var source = Eval(f.Iterable, scope);
        var items = Py.Iterate(source);
        if (f.Filter is not null)
        {
            var kept = new List<object?>();
            foreach (var item in items)
            {
                var probe = new Scope(scope);
                Bind(f.Targets, item, probe, f.Line);
                if (Py.Truthy(Eval(f.Filter, probe))) kept.Add(item);
            }
            items = kept;
        }
        if (items.Count == 0)
            return f.Else is null ? Flow.Normal : Exec(f.Else, scope, sb);
        for (int i = 0; i < items.Count; i++)
        {
            var iteration = new Scope(scope);
            iteration.Set("loop", new LoopInfo(items, i));
            Bind(f.Targets, items[i], iteration, f.Line);
            var flow = Exec(f.Body, iteration, sb);
            if (flow == Flow.Break) break;
        }
        return Flow.Normal;
    }

    private static void Bind(IReadOnlyList<string> targets, object? item, Scope scope, int line)
    {
        if (targets.Count == 1) { scope.Set(targets[0], item); return; }
        var seq = Py.AsSequence(item) ?? (item is string s ? Py.TextElements(s) : null);
        if (seq is null || seq.Count != targets.Count)
            throw new TemplateException($"line {line}: cannot unpack {Py.TypeName(item)} into {targets.Count} names");
        for (int i = 0; i < targets.Count; i++) scope.Set(targets[i], seq[i]);
    }

    private void ExecSet(SetNode s, Scope scope)
    {
        object? value;
        if (s.Body is not null)
        {
            var sb = new StringBuilder();
            Exec(s.Body, scope, sb);
            value = sb.ToString();
        }
        else value = Eval(s.Value!, scope);
        if (s.Attribute is not null)
        {
            if (!scope.TryGet(s.Targets[0], out var target) || target is not JinjaNamespace ns)
                throw new TemplateException($"line {s.Line}: cannot assign attribute on non-namespace object '{s.Targets[0]}'");
            ns.Attrs[s.Attribute] = value;
            return;
        }
        if (s.Targets.Count == 1) scope.Set(s.Targets[0], value);
        else Bind(s.Targets, value, scope, s.Line);
    }

    private JinjaFunction MakeMacro(MacroNode m, Scope definition) => new(m.MacroName, (args, kwargs) =>
    {
        var local = new Scope(definition);
        for (int i = 0; i < m.Params.Count; i++)
        {
            var (name, def) = m.Params[i];
            object? v = i < args.Count ? args[i]
                : kwargs.TryGetValue(name, out var kv) ? kv
                : def is not null ? Eval(def, local) : new Undefined(name);
            local.Set(name, v);
        }
        var sb = new StringBuilder();
        if (++_depth > MaxDepth) throw new TemplateException($"macro '{m.MacroName}' recursed deeper than {MaxDepth}");
        try { Exec(m.Body, local, sb); }
        finally { _depth--; }
        return sb.ToString();
    });

    public object? Eval(Expr e, Scope scope)
    {
        JinjaStack.Check(e.Line);
        switch (e)
        {
            case Literal l: return l.Value;
            case Name n: return scope.TryGet(n.Id, out var v) ? v : new Undefined(n.Id);
            case ListExpr l: return l.Items.Select(x => Eval(x, scope)).ToList();
            case TupleExpr t: return t.Items.Select(x => Eval(x, scope)).ToArray();
            case DictExpr d:
            {
                var dict = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, val) in d.Items)
                    dict[Eval(k, scope) as string ?? throw new TemplateException($"line {d.Line}: dict keys must be strings")] = Eval(val, scope);
                return dict;
            }
            case GetAttr g: return JinjaMembers.GetAttr(Eval(g.Target, scope), g.Attr, g.Line);
            case GetItem g:
                return g.Index is SliceExpr sl
                    ? JinjaMembers.Slice(Eval(g.Target, scope), Opt(sl.Start, scope), Opt(sl.Stop, scope), Opt(sl.Step, scope), g.Line)
                    : JinjaMembers.GetItem(Eval(g.Target, scope), Eval(g.Index, scope), g.Line);
            case Call c:
            {
                var callee = Eval(c.Callee, scope);
                var args = c.Args.Select(a => Eval(a, scope)).ToList();
                var kwargs = c.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, scope), StringComparer.Ordinal);
                return callee is JinjaFunction f ? f.Invoke(args, kwargs)
                    : throw new TemplateException($"line {c.Line}: {(callee is Undefined u ? $"'{u.Name}' is undefined" : $"'{Py.TypeName(callee)}' object is not callable")}");
            }
            case FilterExpr f:
                return JinjaFilters.Apply(f.Filter, Eval(f.Target, scope), f.Args.Select(a => Eval(a, scope)).ToList(),
                    f.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, scope), StringComparer.Ordinal), this, scope, f.Line);
            case TestExpr t:
            {
                var r = JinjaTests.Apply(t.Test, Eval(t.Target, scope), t.Args.Select(a => Eval(a, scope)).ToList(), t.Line);
                return t.Negated ? !r : r;
            }
            case Unary u:
            {
                var x = Eval(u.Operand, scope);
                return u.Op switch
                {
                    "not" => !Py.Truthy(x),
                    "-" => x is long l ? (object)(-l) : x is bool b ? (object)(-(b ? 1L : 0L)) : (object)(-Py.ToDouble(x)),
                    _ => x is bool b2 ? (object)(b2 ? 1L : 0L) : x is long or double ? x : (object)Py.ToDouble(x),
                };
            }
            case Binary b:
                if (b.Op == "and") { var l = Eval(b.Left, scope); return Py.Truthy(l) ? Eval(b.Right, scope) : l; }
                if (b.Op == "or") { var l = Eval(b.Left, scope); return Py.Truthy(l) ? l : Eval(b.Right, scope); }
                return JinjaOperators.Binary(b.Op, Eval(b.Left, scope), Eval(b.Right, scope), b.Line);
            case Conditional c:
                return Py.Truthy(Eval(c.Test, scope)) ? Eval(c.Then, scope) : c.Else is null ? new Undefined("conditional") : Eval(c.Else, scope);
            default: throw new TemplateException($"line {e.Line}: unsupported expression {e.GetType().Name}");
        }
    }

    private object? Opt(Expr? e, Scope scope) => e is null ? null : Eval(e, scope);
}

/// <summary>jinja2's <c>loop</c> object inside a <c>for</c>.</summary>
internal sealed class LoopInfo(IReadOnlyList<object?> items, int index)
{
    public object? Get(string name) => name switch
    {
        "index" => (long)index + 1,
        "index0" => (long)index,
        "revindex" => (long)(items.Count - index),
        "revindex0" => (long)(items.Count - index - 1),
        "first" => index == 0,
        "last" => index == items.Count - 1,
        "length" => (long)items.Count,
        "previtem" => index > 0 ? items[index - 1] : new Undefined("previtem"),
        "nextitem" => index + 1 < items.Count ? items[index + 1] : new Undefined("nextitem"),
        "depth" => 1L,
        "depth0" => 0L,
        "cycle" => new JinjaFunction("cycle", (a, _) => a.Count == 0 ? throw new TemplateException("no items for cycling given") : a[index % a.Count]),
        _ => new Undefined("loop." + name),
    };
}
