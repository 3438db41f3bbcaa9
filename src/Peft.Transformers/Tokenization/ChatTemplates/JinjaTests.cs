namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>jinja2's tests (<c>x is defined</c>, <c>is string</c>, <c>is mapping</c>, ...), with Python's type rules.</summary>
internal static class JinjaTests
{
    private static readonly Dictionary<string, Func<object?, List<object?>, bool>> Registry = new(StringComparer.Ordinal)
    {
        ["defined"] = (v, _) => v is not Undefined,
        ["undefined"] = (v, _) => v is Undefined,
        ["none"] = (v, _) => v is null,
        ["string"] = (v, _) => v is string,
        ["mapping"] = (v, _) => v is OrderedDictionary<string, object?>,
        ["sequence"] = (v, _) => v is string or List<object?> or object?[] or OrderedDictionary<string, object?>,
        ["iterable"] = (v, _) => v is string or List<object?> or object?[] or OrderedDictionary<string, object?>,
        ["number"] = (v, _) => v is long or double or bool,
        ["integer"] = (v, _) => v is long,
        ["float"] = (v, _) => v is double,
        ["boolean"] = (v, _) => v is bool,
        ["true"] = (v, _) => v is true,
        ["false"] = (v, _) => v is false,
        ["odd"] = (v, _) => Py.ToLong(v) % 2 != 0,
        ["even"] = (v, _) => Py.ToLong(v) % 2 == 0,
        ["divisibleby"] = (v, a) => Py.ToLong(a[0]) is var d && d != 0 ? d == -1 || Py.ToLong(v) % d == 0 : throw new TemplateException("division by zero"),
        ["eq"] = (v, a) => Py.Eq(v, a[0]),
        ["equalto"] = (v, a) => Py.Eq(v, a[0]),
        ["=="] = (v, a) => Py.Eq(v, a[0]),
        ["ne"] = (v, a) => !Py.Eq(v, a[0]),
        ["!="] = (v, a) => !Py.Eq(v, a[0]),
        ["lt"] = (v, a) => Py.Compare(v, a[0]) < 0,
        ["gt"] = (v, a) => Py.Compare(v, a[0]) > 0,
        ["le"] = (v, a) => Py.Compare(v, a[0]) <= 0,
        ["ge"] = (v, a) => Py.Compare(v, a[0]) >= 0,
        ["in"] = (v, a) => JinjaOperators.Contains(a[0], v, 0),
        ["lower"] = (v, _) => v is string s && s == s.ToLowerInvariant(),
        ["upper"] = (v, _) => v is string s && s == s.ToUpperInvariant(),
        ["callable"] = (v, _) => v is JinjaFunction,
        ["sameas"] = (v, a) => ReferenceEquals(v, a[0]) || (v is null && a[0] is null) || (v is bool b && a[0] is bool c && b == c),
    };

    // The tests that compare with an argument (jinja2 raises TypeError when it is missing).
    private static readonly HashSet<string> TakesArgument = new(StringComparer.Ordinal) { "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt", "gt", "le", "ge", "in", "sameas" };

    public static bool Apply(string name, object? value, List<object?> args, int line)
    {
        if (!Registry.TryGetValue(name, out var t)) throw new TemplateException($"line {line}: no test named '{name}'");
        if (args.Count == 0 && TakesArgument.Contains(name)) throw new TemplateException($"line {line}: test '{name}' needs an argument");
        return t(value, args);
    }
}
