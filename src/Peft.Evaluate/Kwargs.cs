using System.Collections;
using System.Globalization;

namespace Peft.Evaluate;

/// <summary>Typed, checked access to a metric's keyword arguments (HF <c>compute(**kwargs)</c>).</summary>
internal sealed class Kwargs
{
    private readonly IReadOnlyDictionary<string, object> _values;
    private readonly string _metric;

    public Kwargs(string metric, IReadOnlyDictionary<string, object>? values, IReadOnlyCollection<string> allowed)
    {
        _metric = metric;
        _values = values ?? new Dictionary<string, object>();
        foreach (var key in _values.Keys)
            if (!allowed.Contains(key))
                throw new ArgumentException(
                    $"Metric '{metric}' got an unexpected keyword argument '{key}'. It accepts: [{string.Join(", ", allowed)}].", nameof(values));
    }

    public bool Has(string key) => _values.ContainsKey(key);

    /// <summary>True when the key is present with a Python <c>None</c> (C# null, or the string "None"/"none").</summary>
    public bool IsNone(string key) => _values.TryGetValue(key, out var v) && (v is null || v is string s && (s == "None" || s == "none"));

    public object? Raw(string key) => _values.TryGetValue(key, out var v) ? v : null;

    public string? GetString(string key, string? fallback)
    {
        if (!_values.TryGetValue(key, out var v)) return fallback;
        if (v is null) return null;
        return v as string ?? throw Bad(key, v, "a string");
    }

    public bool GetBool(string key, bool fallback)
    {
        if (!_values.TryGetValue(key, out var v) || v is null) return fallback;
        return v switch
        {
            bool b => b,
            string s when bool.TryParse(s, out var b) => b,
            _ => throw Bad(key, v, "a bool"),
        };
    }

    public int GetInt(string key, int fallback)
    {
        if (!_values.TryGetValue(key, out var v) || v is null) return fallback;
        return v switch
        {
            int i => i,
            long l when l is >= int.MinValue and <= int.MaxValue => (int)l,
            short s => s,
            double d when d == Math.Floor(d) && Math.Abs(d) < int.MaxValue => (int)d,
            string s when int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) => i,
            _ => throw Bad(key, v, "an integer"),
        };
    }

    public double? GetDouble(string key, double? fallback)
    {
        if (!_values.TryGetValue(key, out var v)) return fallback;
        if (v is null) return null;
        return ToDouble(key, v);
    }

    public IReadOnlyList<double>? GetDoubles(string key)
    {
        if (!_values.TryGetValue(key, out var v) || v is null) return null;
        if (v is string || v is not IEnumerable e) throw Bad(key, v, "a list of numbers");
        var list = new List<double>();
        foreach (var x in e) list.Add(ToDouble(key, x));
        return list;
    }

    public IReadOnlyList<object?>? GetList(string key)
    {
        if (!_values.TryGetValue(key, out var v) || v is null) return null;
        if (v is string || v is not IEnumerable e) throw Bad(key, v, "a list");
        return e.Cast<object?>().ToList();
    }

    public IReadOnlyList<string>? GetStrings(string key)
    {
        if (!_values.TryGetValue(key, out var v) || v is null) return null;
        if (v is string one) return [one];
        if (v is not IEnumerable e) throw Bad(key, v, "a list of strings");
        return e.Cast<object?>().Select(x => x as string ?? throw Bad(key, x, "a list of strings")).ToList();
    }

    private double ToDouble(string key, object? v) => v switch
    {
        double d => d,
        float f => f,
        int i => i,
        long l => l,
        short s => s,
        byte b => b,
        decimal m => (double)m,
        bool b => b ? 1 : 0,
        string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        _ => throw Bad(key, v, "a number"),
    };

    public ArgumentException Bad(string key, object? value, string expected) =>
        new($"Metric '{_metric}': keyword argument '{key}' must be {expected}, got {Describe(value)}.", key);

    internal static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"'{s}'",
        IEnumerable e => "[" + string.Join(", ", e.Cast<object?>().Select(Describe)) + "]",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? value.GetType().Name,
    };
}
