using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>jinja2's <c>Undefined</c>: prints as "", is falsy, iterates as empty; attribute access on it fails.</summary>
internal sealed class Undefined(string name)
{
    public string Name { get; } = name;
}

/// <summary>jinja2's <c>namespace()</c>: a mutable attribute bag that <c>set ns.x = ...</c> writes through loop scopes.</summary>
internal sealed class JinjaNamespace
{
    public OrderedDictionary<string, object?> Attrs { get; } = new(StringComparer.Ordinal);
}

/// <summary>A callable value: a global (raise_exception, namespace, range, ...), a macro or a bound method.</summary>
internal sealed class JinjaFunction(string name, Func<List<object?>, Dictionary<string, object?>, object?> invoke)
{
    public string Name { get; } = name;
    public object? Invoke(List<object?> args, Dictionary<string, object?> kwargs) => invoke(args, kwargs);
}

/// <summary>
/// Python semantics of template values: JSON → values, truthiness, equality, ordering, <c>str()</c> / <c>repr()</c>
/// printing (None → "None", True → "True", dicts and lists as Python prints them) and <c>json.dumps</c> as
/// transformers' <c>tojson</c> calls it (<c>ensure_ascii=False</c>).
/// Runtime types: null (None), <see cref="Undefined"/>, bool, long, double, string, <c>List&lt;object?&gt;</c> (list),
/// <c>object?[]</c> (tuple), <c>OrderedDictionary&lt;string, object?&gt;</c> (dict), namespace, function.
/// </summary>
internal static class Py
{
    public static object? FromJson(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => ToDict(o),
        JsonArray a => a.Select(FromJson).ToList(),
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<string>(),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null => null,
            JsonValueKind.Number => Number(v.ToJsonString()),
            _ => throw new TemplateException($"unsupported JSON value {v.ToJsonString()}"),
        },
        _ => throw new TemplateException($"unsupported JSON node {node}"),
    };

    /// <summary>A JSON number as Python's json.loads reads it: int without '.'/exponent, else float.</summary>
    private static object Number(string raw) =>
        raw.IndexOfAny(['.', 'e', 'E']) < 0 && long.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l)
            ? l : (object)double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture);

    private static OrderedDictionary<string, object?> ToDict(JsonObject o)
    {
        var d = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (k, v) in o) d[k] = FromJson(v);
        return d;
    }

    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        object?[] t => t.Length > 0,
        OrderedDictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static double ToDouble(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new TemplateException($"expected a number, got {TypeName(v)}"),
    };

    public static bool Eq(object? a, object? b)
    {
        JinjaStack.Check();
        if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
        if (a is null || b is null) return a is null && b is null;
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? ToDouble(a) == ToDouble(b) : ToLong(a) == ToLong(b);
        if (a is string sa && b is string sb) return string.Equals(sa, sb, StringComparison.Ordinal);
        if (AsSequence(a) is { } la && AsSequence(b) is { } lb && (a is List<object?>) == (b is List<object?>))
            return la.Count == lb.Count && la.Zip(lb).All(p => Eq(p.First, p.Second));
        if (a is OrderedDictionary<string, object?> da && b is OrderedDictionary<string, object?> db)
            return da.Count == db.Count && da.All(kv => db.TryGetValue(kv.Key, out var bv) && Eq(kv.Value, bv));
        return ReferenceEquals(a, b);
    }

    public static long ToLong(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        double d => (long)d,
        _ => throw new TemplateException($"expected an integer, got {TypeName(v)}"),
    };

    public static int Compare(object? a, object? b)
    {
        JinjaStack.Check();
        if (IsNumber(a) && IsNumber(b)) return ToDouble(a).CompareTo(ToDouble(b));
        if (a is string sa && b is string sb) return string.CompareOrdinal(sa, sb);
        if (AsSequence(a) is { } la && AsSequence(b) is { } lb)
        {
            for (int i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                if (!Eq(la[i], lb[i])) return Compare(la[i], lb[i]);
            }
            return la.Count.CompareTo(lb.Count);
        }
        throw new TemplateException($"'<' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    public static IReadOnlyList<object?>? AsSequence(object? v) => v switch
    {
        List<object?> l => l,
        object?[] t => t,
        _ => null,
    };

    /// <summary>Python iteration: lists, tuples, dict keys, string characters; Undefined and None... as jinja2 does.</summary>
    public static IReadOnlyList<object?> Iterate(object? v) => v switch
    {
        Undefined => [],
        List<object?> l => l,
        object?[] t => t,
        OrderedDictionary<string, object?> d => d.Keys.Cast<object?>().ToList(),
        string s => TextElements(s),
        _ => throw new TemplateException($"'{TypeName(v)}' object is not iterable"),
    };

    /// <summary>Python iterates code points (not UTF-16 units).</summary>
    public static List<object?> TextElements(string s)
    {
        var list = new List<object?>();
        for (int i = 0; i < s.Length; i += char.IsSurrogatePair(s, i) ? 2 : 1)
            list.Add(s.Substring(i, char.IsSurrogatePair(s, i) ? 2 : 1));
        return list;
    }

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        object?[] => "tuple",
        OrderedDictionary<string, object?> => "dict",
        JinjaNamespace => "Namespace",
        JinjaFunction => "function",
        _ => v.GetType().Name,
    };

    /// <summary>Python <c>str(v)</c> (jinja2 output of <c>{{ v }}</c>); Undefined prints as "".</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v),
    };

    /// <summary>Python <c>repr(v)</c>.</summary>
    public static string Repr(object? v)
    {
        JinjaStack.Check();
        switch (v)
        {
            case null: return "None";
            case Undefined: return "";
            case bool b: return b ? "True" : "False";
            case long l: return l.ToString(CultureInfo.InvariantCulture);
            case double d: return FloatRepr(d);
            case string s: return StrRepr(s);
            case List<object?> l: return "[" + string.Join(", ", l.Select(Repr)) + "]";
            case object?[] t: return t.Length == 1 ? "(" + Repr(t[0]) + ",)" : "(" + string.Join(", ", t.Select(Repr)) + ")";
            case OrderedDictionary<string, object?> d: return "{" + string.Join(", ", d.Select(kv => StrRepr(kv.Key) + ": " + Repr(kv.Value))) + "}";
            case JinjaNamespace n: return "<Namespace " + string.Join(", ", n.Attrs.Select(kv => kv.Key + "=" + Repr(kv.Value))) + ">";
            default: return v.ToString() ?? "";
        }
    }

    /// <summary>Python's shortest round-trip float repr ("1.0", "0.1", "1e-05", "inf").</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        var r = d.ToString("R", CultureInfo.InvariantCulture);
        if (r.Contains('E'))
        {
            // C# "1E-05" → Python "1e-05"; C# "1E+16" → Python "1e+16"
            var parts = r.Split('E');
            var exp = int.Parse(parts[1], CultureInfo.InvariantCulture);
            return parts[0] + "e" + (exp < 0 ? "-" : "+") + Math.Abs(exp).ToString("00", CultureInfo.InvariantCulture);
        }
        if (Math.Abs(d) >= 1e16)
        {
            var e = d.ToString("0.################e+00", CultureInfo.InvariantCulture);
            return e;
        }
        return r.Contains('.') ? r : r + ".0";
    }

    public static string StrRepr(string s)
    {
        char q = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder().Append(q);
        foreach (var rune in s.EnumerateRunes())
        {
            int c = rune.Value;
            if (c == q || c == '\\') sb.Append('\\').Append((char)c);
            else if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c == '\t') sb.Append("\\t");
            else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(c.ToString("x2", CultureInfo.InvariantCulture));
            else if (c is >= 0x80 and < 0xa0) sb.Append("\\x").Append(c.ToString("x2", CultureInfo.InvariantCulture));
            else sb.Append(rune.ToString());
        }
        return sb.Append(q).ToString();
    }

    /// <summary>Python <c>json.dumps(v, ensure_ascii=False, indent=indent, separators=..., sort_keys=...)</c>.</summary>
    public static string ToJson(object? v, int? indent, (string Item, string Key)? separators = null, bool sortKeys = false)
    {
        var seps = separators ?? (indent is null ? (", ", ": ") : (",", ": "));
        var sb = new StringBuilder();
        WriteJson(sb, v, indent, seps, sortKeys, 0);
        return sb.ToString();
    }

    private static void WriteJson(StringBuilder sb, object? v, int? indent, (string Item, string Key) seps, bool sortKeys, int level)
    {
        JinjaStack.Check();
        switch (v)
        {
            case null: sb.Append("null"); return;
            case bool b: sb.Append(b ? "true" : "false"); return;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); return;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : FloatRepr(d));
                return;
            case string s: JsonString(sb, s); return;
            case Undefined u: throw new TemplateException($"Object of type Undefined ('{u.Name}') is not JSON serializable");
            case OrderedDictionary<string, object?> d:
            {
                if (d.Count == 0) { sb.Append("{}"); return; }
                var items = sortKeys ? d.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList() : d.ToList();
                sb.Append('{');
                for (int i = 0; i < items.Count; i++)
                {
                    if (i > 0) sb.Append(seps.Item);
                    NewLine(sb, indent, level + 1);
                    JsonString(sb, items[i].Key);
                    sb.Append(seps.Key);
                    WriteJson(sb, items[i].Value, indent, seps, sortKeys, level + 1);
                }
                NewLine(sb, indent, level);
                sb.Append('}');
                return;
            }
            default:
            {
                var seq = AsSequence(v) ?? throw new TemplateException($"Object of type {TypeName(v)} is not JSON serializable");
                if (seq.Count == 0) { sb.Append("[]"); return; }
                sb.Append('[');
                for (int i = 0; i < seq.Count; i++)
                {
                    if (i > 0) sb.Append(seps.Item);
                    NewLine(sb, indent, level + 1);
                    WriteJson(sb, seq[i], indent, seps, sortKeys, level + 1);
                }
                NewLine(sb, indent, level);
                sb.Append(']');
                return;
            }
        }
    }

    private static void NewLine(StringBuilder sb, int? indent, int level)
    {
        if (indent is { } n) sb.Append('\n').Append(' ', n * level);
    }

    private static void JsonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
