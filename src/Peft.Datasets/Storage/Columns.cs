using System.Collections;
using System.Globalization;

namespace Peft.Datasets.Storage;

/// <summary>A column: a feature type and a list of chunks (Arrow's ChunkedArray).</summary>
internal sealed class ChunkedColumn
{
    private readonly int[] _starts;

    public ChunkedColumn(FeatureType feature, IReadOnlyList<Chunk> chunks)
    {
        Feature = feature;
        Chunks = chunks;
        _starts = new int[chunks.Count + 1];
        long total = 0;
        for (int i = 0; i < chunks.Count; i++)
        {
            _starts[i] = (int)total;
            total += chunks[i].Length;
            if (total > int.MaxValue) throw new InvalidOperationException("a dataset holds at most 2^31-1 rows");
        }
        _starts[chunks.Count] = (int)total;
        Length = (int)total;
    }

    public FeatureType Feature { get; }
    public IReadOnlyList<Chunk> Chunks { get; }
    public int Length { get; }
    public long ByteSize => Chunks.Sum(c => c.ByteSize);

    public (Chunk Chunk, int Local) Locate(int row)
    {
        if ((uint)row >= (uint)Length) throw new IndexOutOfRangeException($"row {row} out of range [0, {Length})");
        if (Chunks.Count == 1) return (Chunks[0], row);
        int lo = 0, hi = Chunks.Count - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (_starts[mid] <= row) lo = mid; else hi = mid - 1;
        }
        return (Chunks[lo], row - _starts[lo]);
    }

    public object? GetBoxed(int row)
    {
        var (c, i) = Locate(row);
        return c.GetBoxed(i);
    }

    public T Get<T>(int row)
    {
        var (c, i) = Locate(row);
        return c.Get<T>(i);
    }

    public bool IsNull(int row)
    {
        var (c, i) = Locate(row);
        return c.IsNull(i);
    }

    public ChunkedColumn WithFeature(FeatureType f) => new(f, Chunks);

    /// <summary>A new column with rows <paramref name="indices"/> (copied into fresh chunks).</summary>
    public ChunkedColumn Gather(IReadOnlyList<int> indices)
    {
        var b = new ChunkedColumnBuilder(Feature);
        foreach (var r in indices)
        {
            var (c, i) = Locate(r);
            b.AppendSlice(c, i, 1);
        }
        return b.Build();
    }

    public static ChunkedColumn Concat(FeatureType f, IEnumerable<ChunkedColumn> parts) => new(f, parts.SelectMany(p => p.Chunks).ToList());
}

/// <summary>Builds a <see cref="ChunkedColumn"/>, sealing a chunk every <see cref="MaxRows"/> rows or ~256 MB.</summary>
internal sealed class ChunkedColumnBuilder(FeatureType feature)
{
    public const int MaxRows = 1 << 17;
    private const long MaxBytes = 256L << 20;
    private readonly List<Chunk> _chunks = [];
    private readonly ChunkBuilder _current = ChunkBuilder.Create(feature);
    private int _sealed;

    public FeatureType Feature { get; } = feature;
    public int Count => _sealed + _current.Count;

    private void MaybeSeal()
    {
        if (_current.Count >= MaxRows || _current.ByteSize >= MaxBytes) Seal();
    }

    private void Seal()
    {
        if (_current.Count == 0) return;
        _sealed += _current.Count;
        _chunks.Add(_current.Build());
    }

    public void Append(object? value)
    {
        _current.Append(value);
        MaybeSeal();
    }

    public void AppendSlice(Chunk source, int start, int count)
    {
        _current.AppendSlice(source, start, count);
        MaybeSeal();
    }

    /// <summary>Appends a list of values (a Map output column), converting each to the feature type.</summary>
    public void AppendList(IList values, string column)
    {
        try
        {
            if (values.Count > 0 && _current.Count + values.Count <= MaxRows && Feature is ClassLabel or Value { Dtype: not "string" }) _current.AppendAll(values);
            else
            {
                foreach (var v in values)
                {
                    _current.Append(v);
                    MaybeSeal();
                }
            }
            MaybeSeal();
        }
        catch (Exception e) when (e is InvalidCastException or FormatException or OverflowException)
        {
            throw new InvalidCastException($"Column '{column}' ({Feature}): {e.Message}", e);
        }
    }

    public ChunkedColumn Build()
    {
        Seal();
        if (_chunks.Count == 0) _chunks.Add(ChunkBuilder.Create(Feature).Build());
        return new ChunkedColumn(Feature, _chunks.ToList());
    }
}

/// <summary>Converts stored values to the CLR type a caller asks for in <c>Column&lt;T&gt;</c> / <c>Get&lt;T&gt;</c>.</summary>
internal static class ValueConverter<T>
{
    public static readonly Func<object?, T> From = v => (T)ValueConvert.To(v, typeof(T))!;
}

internal static class ValueConvert
{
    private static readonly HashSet<Type> ListDefs =
        [typeof(List<>), typeof(IList<>), typeof(IReadOnlyList<>), typeof(IEnumerable<>), typeof(ICollection<>), typeof(IReadOnlyCollection<>)];

    public static object? To(object? v, Type t)
    {
        if (v is null)
        {
            if (!t.IsValueType || Nullable.GetUnderlyingType(t) is not null) return null;
            throw new InvalidCastException($"the value is null (missing) and cannot be read as {t.Name}; read it as {t.Name}? or object");
        }
        if (t.IsInstanceOfType(v)) return v;
        var u = Nullable.GetUnderlyingType(t) ?? t;
        if (u.IsPrimitive || u == typeof(decimal))
        {
            if (v is IConvertible) return Convert.ChangeType(v, u, CultureInfo.InvariantCulture);
        }
        else if (u == typeof(string))
        {
            return v is IFormattable f ? f.ToString(null, CultureInfo.InvariantCulture) : v.ToString();
        }
        else if (u.IsArray && v is IEnumerable ea && v is not string)
        {
            var et = u.GetElementType()!;
            var items = new List<object?>();
            foreach (var x in ea) items.Add(To(x, et));
            var arr = Array.CreateInstance(et, items.Count);
            for (int i = 0; i < items.Count; i++) arr.SetValue(items[i], i);
            return arr;
        }
        else if (u.IsGenericType && ListDefs.Contains(u.GetGenericTypeDefinition()) && v is IEnumerable el && v is not string)
        {
            var et = u.GetGenericArguments()[0];
            var list = (IList)Activator.CreateInstance(typeof(List<>).MakeGenericType(et))!;
            foreach (var x in el) list.Add(To(x, et));
            return list;
        }
        else if (u == typeof(IList) && v is IEnumerable eo && v is not string)
        {
            var list = new List<object?>();
            foreach (var x in eo) list.Add(x);
            return list;
        }
        throw new InvalidCastException($"cannot read a {v.GetType().Name} value as {t.Name}");
    }
}

/// <summary>Infers HF features from CLR lists and values.</summary>
internal static class TypeInference
{
    public static FeatureType? FromClrType(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        if (Value.FromClr(t) is { } v) return v;
        if (t == typeof(string)) return new Value("string");
        if (t.IsArray) return FromClrType(t.GetElementType()!) is { } e ? new Sequence(e) : null;
        var elem = EnumerableElement(t);
        if (elem is not null && elem != typeof(object)) return FromClrType(elem) is { } f ? new Sequence(f) : null;
        return null;
    }

    public static Type? EnumerableElement(Type t)
    {
        if (t.IsArray) return t.GetElementType();
        if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(IEnumerable<>)) return t.GetGenericArguments()[0];
        var ie = t.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>));
        return ie?.GetGenericArguments()[0];
    }

    /// <summary>The feature of a list of column values (its element type, or a scan of its values).</summary>
    public static FeatureType FromList(IList values, string column)
    {
        var elem = EnumerableElement(values.GetType());
        if (elem is not null && elem != typeof(object) && FromClrType(elem) is { } f) return f;
        return Scan(values.Cast<object?>(), column);
    }

    private static FeatureType Scan(IEnumerable<object?> values, string column)
    {
        FeatureType? f = null;
        foreach (var v in values)
        {
            if (v is null) continue;
            f = Unify(f, FromValue(v, column), column);
        }
        return f ?? new Value("null");
    }

    public static FeatureType FromValue(object v, string column)
    {
        if (Value.FromClr(v.GetType()) is { } val) return val;
        if (v is string) return new Value("string");
        if (v is IDictionary) return new ObjectFeature();
        if (v is IEnumerable e)
        {
            if (FromClrType(v.GetType()) is { } f) return f;
            return new Sequence(Scan(e.Cast<object?>(), column));
        }
        return new ObjectFeature();
    }

    public static FeatureType Unify(FeatureType? a, FeatureType b, string column)
    {
        if (a is null || a == b) return b;
        if (a is Value { Dtype: "null" }) return b;
        if (b is Value { Dtype: "null" }) return a;
        if (a is Value va && b is Value vb)
        {
            int ra = Rank(va.Dtype), rb = Rank(vb.Dtype);
            if (ra > 0 && rb > 0)
            {
                bool anyFloat = va.Dtype.StartsWith("float", StringComparison.Ordinal) || vb.Dtype.StartsWith("float", StringComparison.Ordinal);
                if (anyFloat) return new Value(va.Dtype == "float32" && vb.Dtype == "float32" ? "float32" : "float64");
                return new Value(ra >= rb ? va.Dtype : vb.Dtype);
            }
        }
        if (a is Sequence sa && b is Sequence sb) return new Sequence(Unify(sa.Feature, sb.Feature, column));
        throw new InvalidCastException($"Column '{column}' mixes values of type {a} and {b}");
    }

    private static int Rank(string dtype) => dtype switch { "int32" => 1, "int64" => 2, "float32" => 3, "float64" => 4, _ => 0 };

    /// <summary>Builds a column from a list of values.</summary>
    public static ChunkedColumn BuildColumn(IList values, string column, FeatureType? feature = null)
    {
        var f = feature ?? FromList(values, column);
        var b = new ChunkedColumnBuilder(f);
        b.AppendList(values, column);
        return b.Build();
    }
}
