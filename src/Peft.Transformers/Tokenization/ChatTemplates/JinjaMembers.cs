using System.Text;

namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>
/// Attribute and item access as jinja2's sandboxed environment does it (<c>a.b</c> tries the attribute, then the item;
/// a missing one is <see cref="Undefined"/>; anything on Undefined fails), Python slicing, and the read-only methods
/// of str and dict that real templates call.
/// </summary>
internal static class JinjaMembers
{
    private static readonly HashSet<string> DictMethods = ["items", "keys", "values", "get"];

    public static object? GetAttr(object? target, string name, int line)
    {
        switch (target)
        {
            case Undefined u: throw new TemplateException($"line {line}: '{u.Name}' is undefined (reading .{name})");
            case LoopInfo loop: return loop.Get(name);
            case JinjaNamespace ns: return ns.Attrs.TryGetValue(name, out var v) ? v : new Undefined(name);
            case OrderedDictionary<string, object?> d:
                if (DictMethods.Contains(name)) return DictMethod(d, name);
                return d.TryGetValue(name, out var dv) ? dv : new Undefined(name);
            case string s: return StringMethod(s, name, line);
            default: return new Undefined(name);
        }
    }

    public static object? GetItem(object? target, object? index, int line)
    {
        switch (target)
        {
            case Undefined u: throw new TemplateException($"line {line}: '{u.Name}' is undefined (reading [{Py.Repr(index)}])");
            case OrderedDictionary<string, object?> d:
                return index is string k && d.TryGetValue(k, out var v) ? v : new Undefined(Py.Str(index));
            case JinjaNamespace ns: return index is string k2 && ns.Attrs.TryGetValue(k2, out var nv) ? nv : new Undefined(Py.Str(index));
            case LoopInfo loop when index is string ls: return loop.Get(ls);
            case string s when index is long or bool:
            {
                var chars = Py.TextElements(s);
                long i = Py.ToLong(index);
                if (i < 0) i += chars.Count;
                return i >= 0 && i < chars.Count ? chars[(int)i] : new Undefined($"[{index}]");
            }
            case string s2 when index is string attr: return StringMethod(s2, attr, line);
        }
        if (Py.AsSequence(target) is { } seq && index is long or bool)
        {
            long i = Py.ToLong(index);
            if (i < 0) i += seq.Count;
            return i >= 0 && i < seq.Count ? seq[(int)i] : new Undefined($"[{index}]");
        }
        return new Undefined(Py.Str(index));
    }

    public static object? Slice(object? target, object? start, object? stop, object? step, int line)
    {
        if (target is Undefined u) throw new TemplateException($"line {line}: '{u.Name}' is undefined (slicing)");
        IReadOnlyList<object?> items = target is string s ? Py.TextElements(s)
            : Py.AsSequence(target) ?? throw new TemplateException($"line {line}: '{Py.TypeName(target)}' object is not subscriptable");
        long n = items.Count;
        long st = step is null ? 1 : Py.ToLong(step);
        if (st == 0) throw new TemplateException($"line {line}: slice step cannot be zero");
        long lo, hi;
        if (st > 0)
        {
            lo = start is null ? 0 : Clamp(Py.ToLong(start), n, 0, n);
            hi = stop is null ? n : Clamp(Py.ToLong(stop), n, 0, n);
        }
        else
        {
            lo = start is null ? n - 1 : Clamp(Py.ToLong(start), n, -1, n - 1);
            hi = stop is null ? -1 : Clamp(Py.ToLong(stop), n, -1, n - 1);
        }
        var result = new List<object?>();
        for (long i = lo; st > 0 ? i < hi : i > hi; i += st) result.Add(items[(int)i]);
        return target switch
        {
            string => string.Concat(result.Cast<string>()),
            object?[] => result.ToArray(),
            _ => result,
        };
    }

    private static long Clamp(long i, long n, long min, long max)
    {
        if (i < 0) i += n;
        return Math.Min(Math.Max(i, min), max);
    }

    private static JinjaFunction DictMethod(OrderedDictionary<string, object?> d, string name) => name switch
    {
        "items" => new JinjaFunction("items", (_, _) => d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList()),
        "keys" => new JinjaFunction("keys", (_, _) => d.Keys.Cast<object?>().ToList()),
        "values" => new JinjaFunction("values", (_, _) => d.Values.ToList()),
        _ => new JinjaFunction("get", (a, _) => a.Count > 0 && a[0] is string k && d.TryGetValue(k, out var v) ? v : a.Count > 1 ? a[1] : null),
    };

    private static object? StringMethod(string s, string name, int line)
    {
        Func<List<object?>, Dictionary<string, object?>, object?>? f = name switch
        {
            "startswith" => (a, _) => Prefixes(a, line).Any(p => s.StartsWith(p, StringComparison.Ordinal)),
            "endswith" => (a, _) => Prefixes(a, line).Any(p => s.EndsWith(p, StringComparison.Ordinal)),
            "strip" => (a, _) => a.Count > 0 && a[0] is string cs ? s.Trim(cs.ToCharArray()) : s.Trim(),
            "lstrip" => (a, _) => a.Count > 0 && a[0] is string cs ? s.TrimStart(cs.ToCharArray()) : s.TrimStart(),
            "rstrip" => (a, _) => a.Count > 0 && a[0] is string cs ? s.TrimEnd(cs.ToCharArray()) : s.TrimEnd(),
            "split" => (a, k) => Split(s, Arg(a, k, 0, "sep"), Arg(a, k, 1, "maxsplit") is long m ? m : -1, line),
            "upper" => (_, _) => s.ToUpperInvariant(),
            "lower" => (_, _) => s.ToLowerInvariant(),
            "title" => (_, _) => Title(s),
            "capitalize" => (_, _) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant(),
            "replace" => (a, _) => Replace(s, (string)a[0]!, (string)a[1]!, a.Count > 2 ? Py.ToLong(a[2]) : -1),
            "find" => (a, _) => (long)s.IndexOf((string)a[0]!, StringComparison.Ordinal),
            "rfind" => (a, _) => (long)s.LastIndexOf((string)a[0]!, StringComparison.Ordinal),
            "count" => (a, _) => (long)CountOf(s, (string)a[0]!),
            "join" => (a, _) => string.Join(s, Py.Iterate(a[0]).Select(Py.Str)),
            "splitlines" => (_, _) => s.Split('\n').Select(x => (object?)x.TrimEnd('\r')).Where((x, i) => i < s.Split('\n').Length - 1 || ((string)x!).Length > 0).ToList(),
            "isdigit" => (_, _) => s.Length > 0 && s.All(char.IsDigit),
            "isspace" => (_, _) => s.Length > 0 && s.All(char.IsWhiteSpace),
            "isalpha" => (_, _) => s.Length > 0 && s.All(char.IsLetter),
            _ => null,
        };
        return f is null ? new Undefined(name) : new JinjaFunction(name, f);
    }

    private static object? Arg(List<object?> a, Dictionary<string, object?> k, int i, string name) =>
        i < a.Count ? a[i] : k.TryGetValue(name, out var v) ? v : null;

    private static IEnumerable<string> Prefixes(List<object?> a, int line) => a.Count == 0 ? throw new TemplateException($"line {line}: startswith/endswith needs an argument")
        : a[0] is string p ? [p] : Py.AsSequence(a[0])?.Select(x => (string)x!) ?? throw new TemplateException($"line {line}: startswith/endswith takes a string or a tuple");

    public static List<object?> Split(string s, object? sep, long maxsplit, int line)
    {
        var result = new List<object?>();
        if (sep is null)
        {
            int i = 0, splits = 0;
            while (true)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (maxsplit >= 0 && splits >= maxsplit) { result.Add(s[i..].TrimEnd()); break; }
                int j = i;
                while (j < s.Length && !char.IsWhiteSpace(s[j])) j++;
                result.Add(s[i..j]);
                splits++;
                i = j;
            }
            return result;
        }
        var sp = sep as string ?? throw new TemplateException($"line {line}: split separator must be a string");
        if (sp.Length == 0) throw new TemplateException($"line {line}: empty separator");
        int start = 0, count = 0;
        while (maxsplit < 0 || count < maxsplit)
        {
            int at = s.IndexOf(sp, start, StringComparison.Ordinal);
            if (at < 0) break;
            result.Add(s[start..at]);
            start = at + sp.Length;
            count++;
        }
        result.Add(s[start..]);
        return result;
    }

    public static string Replace(string s, string old, string @new, long count)
    {
        if (count < 0) return old.Length == 0 ? string.Concat(Py.TextElements(s).Select(c => @new + c)) + @new : s.Replace(old, @new, StringComparison.Ordinal);
        var sb = new StringBuilder();
        int start = 0;
        for (long n = 0; n < count; n++)
        {
            int at = s.IndexOf(old, start, StringComparison.Ordinal);
            if (at < 0 || old.Length == 0) break;
            sb.Append(s, start, at - start).Append(@new);
            start = at + old.Length;
        }
        return sb.Append(s, start, s.Length - start).ToString();
    }

    private static int CountOf(string s, string sub)
    {
        if (sub.Length == 0) return s.Length + 1;
        int n = 0;
        for (int at = s.IndexOf(sub, StringComparison.Ordinal); at >= 0; at = s.IndexOf(sub, at + sub.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    /// <summary>Python <c>str.title()</c>: a cased letter after an uncased character starts a word.</summary>
    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool prevCased = false;
        foreach (char c in s)
        {
            bool cased = char.IsUpper(c) || char.IsLower(c) || char.IsLetter(c) && char.ToUpperInvariant(c) != char.ToLowerInvariant(c);
            sb.Append(cased ? (prevCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c)) : c);
            prevCased = cased;
        }
        return sb.ToString();
    }
}
