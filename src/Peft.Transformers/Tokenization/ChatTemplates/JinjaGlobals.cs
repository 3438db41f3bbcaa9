using System.Globalization;
using System.Text;

namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>
/// Global callables of transformers' chat-template environment: <c>raise_exception</c> and <c>strftime_now</c>
/// (transformers), and jinja2's <c>namespace</c>, <c>range</c>, <c>dict</c>.
/// </summary>
internal static class JinjaGlobals
{
    private const int MaxRange = 1_000_000;

    public static void AddTo(Scope scope, Func<DateTime> now)
    {
        scope.Set("raise_exception", new JinjaFunction("raise_exception", (a, _) => throw new TemplateException(a.Count > 0 ? Py.Str(a[0]) : "raise_exception")));
        scope.Set("strftime_now", new JinjaFunction("strftime_now", (a, _) => Strftime(now(), a.Count > 0 ? Py.Str(a[0]) : "")));
        scope.Set("namespace", new JinjaFunction("namespace", (a, k) =>
        {
            var ns = new JinjaNamespace();
            foreach (var arg in a)
                if (arg is OrderedDictionary<string, object?> d) foreach (var (key, v) in d) ns.Attrs[key] = v;
            foreach (var (key, v) in k) ns.Attrs[key] = v;
            return ns;
        }));
        scope.Set("dict", new JinjaFunction("dict", (a, k) =>
        {
            var d = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
            if (a.Count > 0 && a[0] is OrderedDictionary<string, object?> src) foreach (var (key, v) in src) d[key] = v;
            foreach (var (key, v) in k) d[key] = v;
            return d;
        }));
        scope.Set("range", new JinjaFunction("range", (a, _) =>
        {
            long start = 0, stop, step = 1;
            if (a.Count == 1) stop = Py.ToLong(a[0]);
            else { start = Py.ToLong(a[0]); stop = Py.ToLong(a[1]); if (a.Count > 2) step = Py.ToLong(a[2]); }
            if (step == 0) throw new TemplateException("range() arg 3 must not be zero");
            var list = new List<object?>();
            for (long i = start; step > 0 ? i < stop : i > stop; i += step)
            {
                if (list.Count >= MaxRange) throw new TemplateException($"range() longer than {MaxRange} items");
                list.Add(i);
            }
            return list;
        }));
    }

    /// <summary>Python <c>datetime.strftime</c> for the directives templates use (C locale).</summary>
    public static string Strftime(DateTime t, string format)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length) { sb.Append(format[i]); continue; }
            char d = format[++i];
            sb.Append(d switch
            {
                'd' => t.Day.ToString("00", inv),
                'm' => t.Month.ToString("00", inv),
                'Y' => t.Year.ToString("0000", inv),
                'y' => (t.Year % 100).ToString("00", inv),
                'H' => t.Hour.ToString("00", inv),
                'I' => ((t.Hour + 11) % 12 + 1).ToString("00", inv),
                'M' => t.Minute.ToString("00", inv),
                'S' => t.Second.ToString("00", inv),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'b' => t.ToString("MMM", inv),
                'B' => t.ToString("MMMM", inv),
                'a' => t.ToString("ddd", inv),
                'A' => t.ToString("dddd", inv),
                'j' => t.DayOfYear.ToString("000", inv),
                'e' => t.Day.ToString(inv).PadLeft(2),
                '%' => "%",
                _ => "%" + d,
            });
        }
        return sb.ToString();
    }
}
