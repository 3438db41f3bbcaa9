namespace Peft.Evaluate.Classification;

/// <summary>
/// Class labels as scikit-learn sees them: numbers (any numeric type or bool, compared by value, so 1 == 1.0 == true)
/// or strings (ordinal order). Sorted unique labels mirror <c>numpy.unique</c> / <c>sklearn.utils.multiclass.unique_labels</c>.
/// </summary>
internal static class Labels
{
    /// <summary>Normalises a label: numbers to <see cref="double"/>, strings stay strings.</summary>
    public static object Normalize(object? value, string metric, string what) => value switch
    {
        null => throw new ArgumentException($"Metric '{metric}': {what} contains None (null); labels must be numbers, bools or strings."),
        string s => s,
        bool b => b ? 1.0 : 0.0,
        double d when double.IsNaN(d) => throw new ArgumentException($"Metric '{metric}': {what} contains NaN."),
        double d => d,
        float f => (double)f,
        int i => (double)i,
        long l => (double)l,
        short s => (double)s,
        byte b => (double)b,
        sbyte b => (double)b,
        uint u => (double)u,
        ulong u => (double)u,
        ushort u => (double)u,
        decimal m => (double)m,
        Enum e => Convert.ToDouble(e, System.Globalization.CultureInfo.InvariantCulture),
        _ => throw new ArgumentException($"Metric '{metric}': {what} contains a {value.GetType().Name}; labels must be numbers, bools or strings."),
    };

    public static object[] NormalizeAll(IReadOnlyList<object?> values, string metric, string what)
    {
        var result = new object[values.Count];
        for (int i = 0; i < values.Count; i++) result[i] = Normalize(values[i], metric, what);
        return result;
    }

    public static readonly IComparer<object> Comparer = Comparer<object>.Create(Compare);

    private static int Compare(object a, object b) => (a, b) switch
    {
        (double x, double y) => x.CompareTo(y),
        (string x, string y) => string.CompareOrdinal(x, y),
        _ => throw new ArgumentException(
            $"Labels mix numbers and strings ({Format(a)} and {Format(b)}); scikit-learn cannot order them either. Use one type."),
    };

    /// <summary>Sorted unique union (numpy <c>union1d</c>).</summary>
    public static List<object> SortedUnique(params IEnumerable<object>[] sets)
    {
        var set = new HashSet<object>();
        foreach (var s in sets) set.UnionWith(s);
        var list = set.ToList();
        if (list.Count > 1 && list.Any(x => x is string) && list.Any(x => x is not string))
            throw new ArgumentException(
                $"Labels mix numbers and strings ({Format(list.First(x => x is not string))} and {Format(list.First(x => x is string))}); scikit-learn cannot order them either. Use one type.");
        list.Sort(Comparer);
        return list;
    }

    /// <summary>Python-style text for messages: <c>1</c>, <c>'cat'</c>.</summary>
    public static string Format(object? label) => label switch
    {
        null => "None",
        string s => $"'{s}'",
        double d when d == Math.Floor(d) && Math.Abs(d) < 1e15 => ((long)d).ToString(System.Globalization.CultureInfo.InvariantCulture),
        double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        _ => label.ToString() ?? "?",
    };

    public static string FormatList(IEnumerable<object> labels) => "[" + string.Join(", ", labels.Select(Format)) + "]";
}
