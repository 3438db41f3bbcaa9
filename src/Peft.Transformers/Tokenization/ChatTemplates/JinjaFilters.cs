using System.Globalization;
using System.Text;

namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>
/// The filters chat templates use, as jinja2 defines them, with transformers' <c>tojson</c>
/// (<c>json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)</c>, no HTML escaping).
/// </summary>
internal static class JinjaFilters
{
    private delegate object? Filter(object? value, List<object?> args, Dictionary<string, object?> kwargs, JinjaEvaluator ev, Scope scope, int line);

    private static readonly Dictionary<string, Filter> Registry = new(StringComparer.Ordinal)
    {
        ["trim"] = (v, a, _, _, _, _) => a.Count > 0 && a[0] is string cs ? Py.Str(v).Trim(cs.ToCharArray()) : Py.Str(v).Trim(),
        ["tojson"] = (v, a, k, _, _, _) => Py.ToJson(v,
            Arg(a, k, 0, "indent") is { } ind and not null ? (int)Py.ToLong(ind) : null,
            Arg(a, k, -1, "separators") is { } seps ? (Py.Str(Py.AsSequence(seps)![0]), Py.Str(Py.AsSequence(seps)![1])) : null,
            Py.Truthy(Arg(a, k, -1, "sort_keys"))),
        ["length"] = (v, _, _, _, _, l) => Length(v, l),
        ["count"] = (v, _, _, _, _, l) => Length(v, l),
        ["upper"] = (v, _, _, _, _, _) => Py.Str(v).ToUpperInvariant(),
        ["lower"] = (v, _, _, _, _, _) => Py.Str(v).ToLowerInvariant(),
        ["title"] = (v, _, _, _, _, _) => JinjaMembers.Title(Py.Str(v)),
        ["capitalize"] = (v, _, _, _, _, _) => Py.Str(v) is { Length: > 0 } s ? char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant() : "",
        ["replace"] = (v, a, _, _, _, _) => JinjaMembers.Replace(Py.Str(v), Py.Str(a[0]), Py.Str(a[1]), a.Count > 2 ? Py.ToLong(a[2]) : -1),
        ["default"] = Default,
        ["d"] = Default,
        ["items"] = (v, _, _, _, _, l) => v switch
        {
            Undefined => new List<object?>(),
            OrderedDictionary<string, object?> d => d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList(),
            _ => throw new TemplateException($"line {l}: items filter needs a mapping, got {Py.TypeName(v)}"),
        },
        ["join"] = (v, a, k, _, _, l) =>
        {
            var sep = Arg(a, k, 0, "d") is string s ? s : "";
            var attr = Arg(a, k, 1, "attribute") as string;
            return string.Join(sep, Py.Iterate(v).Select(x => Py.Str(attr is null ? x : Attribute(x, attr, l))));
        },
        ["string"] = (v, _, _, _, _, _) => Py.Str(v),
        ["first"] = (v, _, _, _, _, _) => Py.Iterate(v) is { Count: > 0 } s ? s[0] : new Undefined("first"),
        ["last"] = (v, _, _, _, _, _) => Py.Iterate(v) is { Count: > 0 } s ? s[^1] : new Undefined("last"),
        ["list"] = (v, _, _, _, _, _) => Py.Iterate(v).ToList(),
        ["reverse"] = (v, _, _, _, _, _) => v is string s ? string.Concat(Py.TextElements(s).Cast<string>().Reverse()) : Py.Iterate(v).Reverse().ToList(),
        ["selectattr"] = (v, a, _, _, _, l) => SelectAttr(v, a, true, l),
        ["rejectattr"] = (v, a, _, _, _, l) => SelectAttr(v, a, false, l),
        ["select"] = (v, a, _, _, _, l) => Select(v, a, true, l),
        ["reject"] = (v, a, _, _, _, l) => Select(v, a, false, l),
        ["map"] = Map,
        ["int"] = (v, a, _, _, _, _) => ToInt(v, a.Count > 0 ? a[0] : 0L),
        ["float"] = (v, a, _, _, _, _) => v is string s && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d
            : Py.IsNumber(v) ? Py.ToDouble(v) : a.Count > 0 ? a[0] : 0.0,
        ["abs"] = (v, _, _, _, _, _) => v is long l ? (object)Math.Abs(l) : Math.Abs(Py.ToDouble(v)),
        ["round"] = (v, a, _, _, _, _) => Round(Py.ToDouble(v), a.Count > 0 ? Py.ToLong(a[0]) : 0),
        ["sum"] = (v, _, _, _, _, l) => Py.Iterate(v).Aggregate((object?)0L, (acc, x) => JinjaOperators.Binary("+", acc, x, l)),
        // jinja2: an empty sequence has no min / max (Undefined, an error only when used)
        ["min"] = (v, _, _, _, _, _) => Py.Iterate(v) is { Count: > 0 } s ? s.Aggregate((a, b) => Py.Compare(b, a) < 0 ? b : a) : new Undefined("min"),
        ["max"] = (v, _, _, _, _, _) => Py.Iterate(v) is { Count: > 0 } s ? s.Aggregate((a, b) => Py.Compare(b, a) > 0 ? b : a) : new Undefined("max"),
        ["unique"] = (v, _, _, _, _, _) => Py.Iterate(v).Aggregate(new List<object?>(), (acc, x) => { if (!acc.Any(y => Py.Eq(x, y))) acc.Add(x); return acc; }),
        ["sort"] = (v, a, k, _, _, l) =>
        {
            var attr = Arg(a, k, 2, "attribute") as string;
            var items = Py.Iterate(v).ToList();
            try
            {
                items.Sort((x, y) => Py.Compare(attr is null ? x : Attribute(x, attr, l), attr is null ? y : Attribute(y, attr, l)));
            }
            catch (InvalidOperationException e) when (e.InnerException is TemplateException t)
            {
                throw t.AtLine(l);   // List.Sort wraps what the comparison throws ('<' between a str and an int)
            }
            if (Py.Truthy(Arg(a, k, 0, "reverse"))) items.Reverse();
            return items;
        },
        ["indent"] = (v, a, k, _, _, _) => Indent(Py.Str(v), Arg(a, k, 0, "width") ?? 4L, Py.Truthy(Arg(a, k, 1, "first")), Py.Truthy(Arg(a, k, 2, "blank"))),
        ["safe"] = (v, _, _, _, _, _) => v,
        ["escape"] = (v, _, _, _, _, _) => Escape(Py.Str(v)),
        ["e"] = (v, _, _, _, _, _) => Escape(Py.Str(v)),
        ["wordcount"] = (v, _, _, _, _, l) => (long)JinjaMembers.Split(Py.Str(v), null, -1, l).Count,
    };

    // jinja2's round (common method): Math.Round takes 0..15 digits; more cannot change a double, fewer than 0 round to tens.
    private static double Round(double x, long digits)
    {
        if (digits > 15 || !double.IsFinite(x)) return x;
        if (digits >= 0) return Math.Round(x, (int)digits, MidpointRounding.AwayFromZero);
        double scale = Math.Pow(10, Math.Min(-digits, 400));
        return Math.Round(x / scale, MidpointRounding.AwayFromZero) * scale;
    }

    public static object? Apply(string name, object? value, List<object?> args, Dictionary<string, object?> kwargs, JinjaEvaluator ev, Scope scope, int line) =>
        Registry.TryGetValue(name, out var f) ? f(value, args, kwargs, ev, scope, line)
            : throw new TemplateException($"line {line}: no filter named '{name}'");

    private static object? Arg(List<object?> a, Dictionary<string, object?> k, int i, string name) =>
        i >= 0 && i < a.Count ? a[i] : k.TryGetValue(name, out var v) ? v : null;

    private static object? Default(object? v, List<object?> a, Dictionary<string, object?> k, JinjaEvaluator ev, Scope s, int l)
    {
        var fallback = Arg(a, k, 0, "default_value") ?? (a.Count > 0 ? null : "");
        bool boolean = Py.Truthy(Arg(a, k, 1, "boolean"));
        return v is Undefined || (boolean && !Py.Truthy(v)) ? fallback : v;
    }

    private static long Length(object? v, int line) => v switch
    {
        Undefined => 0,
        string s => Py.TextElements(s).Count,
        OrderedDictionary<string, object?> d => d.Count,
        JinjaNamespace n => n.Attrs.Count,
        _ => Py.AsSequence(v)?.Count ?? throw new TemplateException($"line {line}: object of type '{Py.TypeName(v)}' has no len()"),
    };

    private static object? Attribute(object? item, string attr, int line)
    {
        object? cur = item;
        foreach (var part in attr.Split('.'))
            cur = long.TryParse(part, out var idx) ? JinjaMembers.GetItem(cur, idx, line) : JinjaMembers.GetAttr(cur, part, line);
        return cur;
    }

    private static List<object?> SelectAttr(object? v, List<object?> a, bool keep, int line)
    {
        var attr = Py.Str(a[0]);
        return Py.Iterate(v).Where(x =>
        {
            var value = Attribute(x, attr, line);
            bool r = a.Count > 1 ? JinjaTests.Apply(Py.Str(a[1]), value, a.Skip(2).ToList(), line) : Py.Truthy(value);
            return r == keep;
        }).ToList();
    }

    private static List<object?> Select(object? v, List<object?> a, bool keep, int line) =>
        Py.Iterate(v).Where(x => (a.Count > 0 ? JinjaTests.Apply(Py.Str(a[0]), x, a.Skip(1).ToList(), line) : Py.Truthy(x)) == keep).ToList();

    private static object? Map(object? v, List<object?> a, Dictionary<string, object?> k, JinjaEvaluator ev, Scope scope, int line)
    {
        if (k.TryGetValue("attribute", out var attr))
        {
            k.TryGetValue("default", out var def);
            return Py.Iterate(v).Select(x => Attribute(x, Py.Str(attr), line) is Undefined && k.ContainsKey("default") ? def : Attribute(x, Py.Str(attr), line)).ToList();
        }
        if (a.Count == 0) throw new TemplateException($"line {line}: map needs a filter name or attribute=");
        var name = Py.Str(a[0]);
        return Py.Iterate(v).Select(x => Apply(name, x, a.Skip(1).ToList(), new Dictionary<string, object?>(k), ev, scope, line)).ToList();
    }

    private static object? ToInt(object? v, object? fallback) => v switch
    {
        long l => l,
        bool b => b ? 1L : 0L,
        double d => (long)Math.Truncate(d),
        string s when long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) => l,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => (long)Math.Truncate(d),
        _ => fallback,
    };

    private static string Indent(string s, object width, bool first, bool blank)
    {
        var pad = width is string w ? w : new string(' ', (int)Py.ToLong(width));
        var lines = s.Split('\n');
        var sb = new StringBuilder();
        for (int i = 0; i < lines.Length; i++)
        {
            if (i > 0) sb.Append('\n');
            bool indent = (i > 0 || first) && (blank || lines[i].Trim().Length > 0);
            if (indent) sb.Append(pad);
            sb.Append(lines[i]);
        }
        return sb.ToString();
    }

    private static string Escape(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");
}
