using System.Text;

namespace Peft.Datasets;

/// <summary>
/// The type of one column, as Hugging Face <c>datasets.features</c>: <see cref="Value"/>, <see cref="ClassLabel"/>
/// or <see cref="Sequence"/>. Each maps to a CLR element type (<see cref="ClrType"/>) that row access returns.
/// </summary>
public abstract record FeatureType
{
    /// <summary>The CLR type of one value of this feature as returned by row access (e.g. <c>long</c>, <c>string</c>, <c>int[]</c>).</summary>
    public abstract Type ClrType { get; }
}

/// <summary>A scalar value: dtype "string", "bool", "int32", "int64", "float32", "float64" (HF <c>Value(dtype)</c>).</summary>
/// <param name="Dtype">The HF dtype name.</param>
public sealed record Value(string Dtype) : FeatureType
{
    /// <summary>Known dtypes.</summary>
    public static readonly IReadOnlyList<string> Dtypes = ["string", "bool", "int32", "int64", "float32", "float64", "null"];

    /// <inheritdoc />
    public override Type ClrType => Dtype switch
    {
        "string" => typeof(string),
        "bool" => typeof(bool),
        "int32" => typeof(int),
        "int64" => typeof(long),
        "float32" => typeof(float),
        "float64" => typeof(double),
        "null" => typeof(object),
        _ => throw new ArgumentException($"Unknown Value dtype '{Dtype}'; expected one of {string.Join(", ", Dtypes)}"),
    };

    /// <summary>The <see cref="Value"/> whose CLR type is <paramref name="t"/>, or null when none is.</summary>
    public static Value? FromClr(Type t)
    {
        if (t == typeof(string)) return new Value("string");
        if (t == typeof(bool)) return new Value("bool");
        if (t == typeof(int) || t == typeof(short) || t == typeof(sbyte) || t == typeof(byte) || t == typeof(ushort)) return new Value("int32");
        if (t == typeof(long) || t == typeof(uint)) return new Value("int64");
        if (t == typeof(float) || t == typeof(Half)) return new Value("float32");
        if (t == typeof(double) || t == typeof(decimal)) return new Value("float64");
        return null;
    }

    /// <inheritdoc />
    public override string ToString() => $"Value('{Dtype}')";
}

/// <summary>
/// Class ids with names (HF <c>ClassLabel(names=[...])</c>); stored as int64 ids.
/// <see cref="Str2Int"/> / <see cref="Int2Str"/> convert between names and ids.
/// </summary>
public sealed record ClassLabel : FeatureType
{
    private readonly Dictionary<string, int> _ids;

    /// <summary>A ClassLabel with these names (id i is names[i]).</summary>
    public ClassLabel(IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        Names = names.ToArray();
        _ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < Names.Count; i++)
        {
            if (!_ids.TryAdd(Names[i], i)) throw new ArgumentException($"ClassLabel names must be unique; '{Names[i]}' appears twice", nameof(names));
        }
    }

    /// <summary>A ClassLabel with <paramref name="numClasses"/> names "0", "1", ... (HF <c>ClassLabel(num_classes=n)</c>).</summary>
    public ClassLabel(int numClasses) : this(Enumerable.Range(0, numClasses).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))) { }

    /// <summary>The class names, by id.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>Number of classes.</summary>
    public int NumClasses => Names.Count;

    /// <inheritdoc />
    public override Type ClrType => typeof(long);

    /// <summary>The id of a class name (HF <c>str2int</c>); throws naming the value when unknown.</summary>
    public int Str2Int(string name) => _ids.TryGetValue(name, out var id)
        ? id
        : throw new ArgumentException($"Invalid ClassLabel name '{name}'; known names: [{string.Join(", ", Names.Select(n => $"'{n}'"))}]");

    /// <summary>The name of a class id (HF <c>int2str</c>); throws when out of range.</summary>
    public string Int2Str(long id) => id >= 0 && id < Names.Count
        ? Names[(int)id]
        : throw new ArgumentOutOfRangeException(nameof(id), id, $"ClassLabel id must be in [0, {Names.Count})");

    /// <inheritdoc />
    public bool Equals(ClassLabel? other) => other is not null && Names.SequenceEqual(other.Names);

    /// <inheritdoc />
    public override int GetHashCode() => Names.Aggregate(17, (h, n) => h * 31 + n.GetHashCode(StringComparison.Ordinal));

    /// <inheritdoc />
    public override string ToString() => $"ClassLabel(names=[{string.Join(", ", Names.Select(n => $"'{n}'"))}])";
}

/// <summary>A list of values of one feature (HF <c>Sequence</c> / <c>List</c>); rows come back as arrays (<c>int[]</c>, <c>string[]</c>, <c>long[][]</c>).</summary>
/// <param name="Feature">The element feature.</param>
/// <param name="Length">Fixed length, or -1 for variable length.</param>
public sealed record Sequence(FeatureType Feature, int Length = -1) : FeatureType
{
    /// <inheritdoc />
    public override Type ClrType => Feature.ClrType.MakeArrayType();

    /// <inheritdoc />
    public override string ToString() => Length < 0 ? $"List({Feature})" : $"List({Feature}, length={Length})";
}

/// <summary>A value of any other kind (nested objects / structs), kept as CLR objects.</summary>
public sealed record ObjectFeature : FeatureType
{
    /// <inheritdoc />
    public override Type ClrType => typeof(object);

    /// <inheritdoc />
    public override string ToString() => "Object";
}

/// <summary>The ordered column name → feature map of a dataset (HF <c>Features</c>).</summary>
public sealed class Features : IReadOnlyDictionary<string, FeatureType>
{
    private readonly List<KeyValuePair<string, FeatureType>> _items;
    private readonly Dictionary<string, FeatureType> _map;

    /// <summary>Features from ordered (name, type) pairs.</summary>
    public Features(IEnumerable<KeyValuePair<string, FeatureType>> items)
    {
        _items = items.ToList();
        _map = new Dictionary<string, FeatureType>(StringComparer.Ordinal);
        foreach (var (k, v) in _items)
        {
            if (!_map.TryAdd(k, v)) throw new ArgumentException($"Duplicate column name '{k}'");
        }
    }

    /// <inheritdoc />
    public FeatureType this[string key] => _map.TryGetValue(key, out var f) ? f : throw new KeyNotFoundException($"Column '{key}' not in features [{string.Join(", ", Keys)}]");

    /// <inheritdoc />
    public IEnumerable<string> Keys => _items.Select(i => i.Key);

    /// <inheritdoc />
    public IEnumerable<FeatureType> Values => _items.Select(i => i.Value);

    /// <inheritdoc />
    public int Count => _items.Count;

    /// <inheritdoc />
    public bool ContainsKey(string key) => _map.ContainsKey(key);

    /// <inheritdoc />
    public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out FeatureType value) => _map.TryGetValue(key, out value);

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, FeatureType>> GetEnumerator() => _items.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>HF-like text: <c>{'text': Value('string'), 'label': ClassLabel(names=[...])}</c>.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder("{");
        sb.AppendJoin(", ", _items.Select(i => $"'{i.Key}': {i.Value}"));
        return sb.Append('}').ToString();
    }
}
