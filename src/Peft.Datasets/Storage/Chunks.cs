using System.Collections;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Peft.Datasets.Storage;

// Storage choice: compact typed buffers in the Apache Arrow layout (primitive arrays, UTF-8 blob + int32 offsets for
// strings, offsets + child array for lists, an optional null mask), written by hand rather than with Apache.Arrow's
// builders so the hot paths (token-id lists, gathers) stay span copies without boxing. A column is a list of such
// chunks (like an Arrow ChunkedArray), so no single buffer must exceed 2 GB and Map can stream batch by batch.

/// <summary>One immutable run of values of one column.</summary>
internal abstract class Chunk
{
    public abstract int Length { get; }
    public abstract Type ElementType { get; }
    public abstract long ByteSize { get; }
    public abstract bool IsNull(int i);
    public abstract object? GetBoxed(int i);
    public virtual T Get<T>(int i) => ValueConverter<T>.From(GetBoxed(i));

    /// <summary>Values [start, start+count) as a typed array of <see cref="ElementType"/> (nulls become default / null).</summary>
    public abstract Array ToArray(int start, int count);
}

internal sealed class PrimitiveChunk<TS>(TS[] values, int length, bool[]? nulls) : Chunk where TS : unmanaged
{
    public TS[] Values { get; } = values;
    public bool[]? Nulls { get; } = nulls;
    public override int Length => length;
    public override Type ElementType => typeof(TS);
    public override long ByteSize => (long)length * Unsafe.SizeOf<TS>() + (Nulls?.Length ?? 0);
    public override bool IsNull(int i) => Nulls is not null && Nulls[i];
    public override object? GetBoxed(int i) => IsNull(i) ? null : Values[i];

    public override T Get<T>(int i)
    {
        if (typeof(T) == typeof(TS) && !IsNull(i)) return Unsafe.As<TS, T>(ref Values[i]);
        return base.Get<T>(i);
    }

    public override Array ToArray(int start, int count) => Values.AsSpan(start, count).ToArray();
}

internal sealed class StringChunk(byte[] data, int[] offsets, int length, bool[]? nulls) : Chunk
{
    public byte[] Data { get; } = data;
    public int[] Offsets { get; } = offsets;
    public bool[]? Nulls { get; } = nulls;
    public override int Length => length;
    public override Type ElementType => typeof(string);
    public override long ByteSize => Offsets[length] + 4L * (length + 1) + (Nulls?.Length ?? 0);
    public override bool IsNull(int i) => Nulls is not null && Nulls[i];
    public ReadOnlySpan<byte> Bytes(int i) => Data.AsSpan(Offsets[i], Offsets[i + 1] - Offsets[i]);
    public string? GetString(int i) => IsNull(i) ? null : Encoding.UTF8.GetString(Bytes(i));
    public override object? GetBoxed(int i) => GetString(i);

    public override T Get<T>(int i)
    {
        if (typeof(T) == typeof(string) || typeof(T) == typeof(object))
        {
            var s = GetString(i);
            return Unsafe.As<string?, T>(ref s);
        }
        return base.Get<T>(i);
    }

    public override Array ToArray(int start, int count)
    {
        var a = new string?[count];
        for (int k = 0; k < count; k++) a[k] = GetString(start + k);
        return a;
    }
}

internal sealed class ListChunk(int[] offsets, Chunk child, int length, bool[]? nulls) : Chunk
{
    public int[] Offsets { get; } = offsets;
    public Chunk Child { get; } = child;
    public bool[]? Nulls { get; } = nulls;
    public override int Length => length;
    public override Type ElementType => Child.ElementType.MakeArrayType();
    public override long ByteSize => 4L * (length + 1) + Child.ByteSize + (Nulls?.Length ?? 0);
    public override bool IsNull(int i) => Nulls is not null && Nulls[i];
    public int ValueLength(int i) => Offsets[i + 1] - Offsets[i];
    public override object? GetBoxed(int i) => IsNull(i) ? null : Child.ToArray(Offsets[i], ValueLength(i));

    public override T Get<T>(int i)
    {
        if (!IsNull(i))
        {
            // Fast paths for token-id style lists: int[] / long[] / float[] ... straight from the child buffer.
            if (Child is PrimitiveChunk<int> ci)
            {
                if (typeof(T) == typeof(int[])) { var a = ci.Values.AsSpan(Offsets[i], ValueLength(i)).ToArray(); return Unsafe.As<int[], T>(ref a); }
                if (typeof(T) == typeof(long[])) { var a = Widen(ci.Values.AsSpan(Offsets[i], ValueLength(i))); return Unsafe.As<long[], T>(ref a); }
            }
            if (Child is PrimitiveChunk<long> cl && typeof(T) == typeof(long[]))
            {
                var a = cl.Values.AsSpan(Offsets[i], ValueLength(i)).ToArray();
                return Unsafe.As<long[], T>(ref a);
            }
            if (typeof(T) == Child.ElementType.MakeArrayType() || typeof(T) == typeof(object) || typeof(T) == typeof(Array))
            {
                object a = Child.ToArray(Offsets[i], ValueLength(i));
                return Unsafe.As<object, T>(ref a);
            }
        }
        return base.Get<T>(i);
    }

    private static long[] Widen(ReadOnlySpan<int> s)
    {
        var r = new long[s.Length];
        for (int k = 0; k < s.Length; k++) r[k] = s[k];
        return r;
    }

    public override Array ToArray(int start, int count)
    {
        var a = Array.CreateInstance(ElementType, count);
        for (int k = 0; k < count; k++) a.SetValue(GetBoxed(start + k), k);
        return a;
    }
}

internal sealed class ObjectChunk(object?[] values, int length) : Chunk
{
    public object?[] Values { get; } = values;
    public override int Length => length;
    public override Type ElementType => typeof(object);
    public override long ByteSize => 8L * length;
    public override bool IsNull(int i) => Values[i] is null;
    public override object? GetBoxed(int i) => Values[i];
    public override Array ToArray(int start, int count) => Values.AsSpan(start, count).ToArray();
}

/// <summary>Appends values of one feature type and seals them into a <see cref="Chunk"/>.</summary>
internal abstract class ChunkBuilder
{
    public abstract int Count { get; }
    public abstract long ByteSize { get; }
    public abstract void Append(object? value);
    public abstract void AppendNull();
    public abstract Chunk Build();

    /// <summary>Appends values [start, start+count) of a chunk built for the same feature type.</summary>
    public virtual void AppendSlice(Chunk source, int start, int count)
    {
        for (int k = 0; k < count; k++) Append(source.GetBoxed(start + k));
    }

    /// <summary>Appends every element of a list (fast paths for typed arrays / lists).</summary>
    public virtual void AppendAll(IList values)
    {
        foreach (var v in values) Append(v);
    }

    public static ChunkBuilder Create(FeatureType feature) => feature switch
    {
        ClassLabel => new PrimitiveBuilder<long>(),
        Value { Dtype: "string" } => new StringChunkBuilder(),
        Value { Dtype: "bool" } => new PrimitiveBuilder<bool>(),
        Value { Dtype: "int32" } => new PrimitiveBuilder<int>(),
        Value { Dtype: "int64" } => new PrimitiveBuilder<long>(),
        Value { Dtype: "float32" } => new PrimitiveBuilder<float>(),
        Value { Dtype: "float64" } => new PrimitiveBuilder<double>(),
        Sequence s => new ListChunkBuilder(Create(s.Feature)),
        _ => new ObjectChunkBuilder(),
    };
}

internal sealed class PrimitiveBuilder<TS> : ChunkBuilder where TS : unmanaged
{
    private TS[] _values = new TS[16];
    private bool[]? _nulls;
    private int _count;

    public override int Count => _count;
    public override long ByteSize => (long)_count * Unsafe.SizeOf<TS>();

    private void Grow(int extra)
    {
        int need = _count + extra;
        if (need <= _values.Length) return;
        int cap = (int)Math.Min(Array.MaxLength, Math.Max((long)need, 2L * _values.Length));
        Array.Resize(ref _values, cap);
        if (_nulls is not null) Array.Resize(ref _nulls, cap);
    }

    public void Add(TS v)
    {
        if (_count == _values.Length) Grow(1);
        _values[_count++] = v;
    }

    public void AddRange(ReadOnlySpan<TS> span)
    {
        Grow(span.Length);
        span.CopyTo(_values.AsSpan(_count));
        _count += span.Length;
    }

    public override void AppendNull()
    {
        Grow(1);
        _nulls ??= new bool[_values.Length];
        _nulls[_count] = true;
        _values[_count++] = default;
    }

    public override void Append(object? value)
    {
        if (value is null) { AppendNull(); return; }
        if (value is TS t) { Add(t); return; }
        if (value is IConvertible && value is not string || value is string)
        {
            Add((TS)Convert.ChangeType(value, typeof(TS), System.Globalization.CultureInfo.InvariantCulture));
            return;
        }
        throw new InvalidCastException($"cannot store a {value.GetType().Name} value in a {typeof(TS).Name} column");
    }

    public override void AppendAll(IList values)
    {
        switch (values)
        {
            case TS[] a: AddRange(a); break;
            case List<TS> l: AddRange(CollectionsMarshal.AsSpan(l)); break;
            default: base.AppendAll(values); break;
        }
    }

    public override void AppendSlice(Chunk source, int start, int count)
    {
        if (source is PrimitiveChunk<TS> p)
        {
            if (p.Nulls is null && _nulls is null) { AddRange(p.Values.AsSpan(start, count)); return; }
            for (int k = 0; k < count; k++)
            {
                if (p.IsNull(start + k)) AppendNull(); else Add(p.Values[start + k]);
            }
            return;
        }
        base.AppendSlice(source, start, count);
    }

    public override Chunk Build()
    {
        bool exact = _count == _values.Length;
        var chunk = new PrimitiveChunk<TS>(exact ? _values : _values.AsSpan(0, _count).ToArray(), _count,
            _nulls?.AsSpan(0, _count).ToArray());
        // The next chunk is likely as big as this one: reuse the buffer (or start at this size) instead of
        // doubling from scratch, which keeps large-object garbage down when streaming millions of rows.
        if (exact) _values = new TS[Math.Max(16, _count)];
        _nulls = null;
        _count = 0;
        return chunk;
    }
}

internal sealed class StringChunkBuilder : ChunkBuilder
{
    private byte[] _data = new byte[256];
    private int[] _offsets = new int[17];
    private bool[]? _nulls;
    private int _count;
    private int _bytes;

    public override int Count => _count;
    public override long ByteSize => _bytes + 4L * _count;

    private void GrowRows()
    {
        if (_count + 1 < _offsets.Length) return;
        int cap = Math.Max(_offsets.Length * 2, 17);
        Array.Resize(ref _offsets, cap);
        if (_nulls is not null) Array.Resize(ref _nulls, cap);
    }

    private void GrowBytes(int extra)
    {
        long need = (long)_bytes + extra;
        if (need > Array.MaxLength) throw new InvalidOperationException("string chunk exceeds 2 GB; seal the chunk before appending");
        if (need <= _data.Length) return;
        Array.Resize(ref _data, (int)Math.Min(Array.MaxLength, Math.Max(need, 2L * _data.Length)));
    }

    public void AddUtf8(ReadOnlySpan<byte> utf8)
    {
        GrowRows();
        GrowBytes(utf8.Length);
        utf8.CopyTo(_data.AsSpan(_bytes));
        _bytes += utf8.Length;
        _offsets[++_count] = _bytes;
    }

    public void Add(string s)
    {
        GrowRows();
        GrowBytes(Encoding.UTF8.GetMaxByteCount(s.Length) <= 1 << 20 ? Encoding.UTF8.GetMaxByteCount(s.Length) : Encoding.UTF8.GetByteCount(s));
        _bytes += Encoding.UTF8.GetBytes(s, _data.AsSpan(_bytes));
        _offsets[++_count] = _bytes;
    }

    public override void AppendNull()
    {
        GrowRows();
        _nulls ??= new bool[_offsets.Length];
        _nulls[_count] = true;
        _offsets[++_count] = _bytes;
    }

    public override void Append(object? value)
    {
        switch (value)
        {
            case null: AppendNull(); break;
            case string s: Add(s); break;
            case bool b: Add(b ? "true" : "false"); break;
            case IFormattable f: Add(f.ToString(null, System.Globalization.CultureInfo.InvariantCulture)); break;
            default: throw new InvalidCastException($"cannot store a {value.GetType().Name} value in a string column");
        }
    }

    public override void AppendSlice(Chunk source, int start, int count)
    {
        if (source is StringChunk s)
        {
            for (int k = 0; k < count; k++)
            {
                if (s.IsNull(start + k)) AppendNull(); else AddUtf8(s.Bytes(start + k));
            }
            return;
        }
        base.AppendSlice(source, start, count);
    }

    public override Chunk Build()
    {
        var chunk = new StringChunk(_data.AsSpan(0, _bytes).ToArray(), _offsets.AsSpan(0, _count + 1).ToArray(), _count,
            _nulls?.AsSpan(0, _count).ToArray());
        // keep the grown buffers for the next chunk (their contents are copied into the sealed chunk above)
        _offsets[0] = 0;
        _nulls = null;
        _count = 0;
        _bytes = 0;
        return chunk;
    }
}

internal sealed class ListChunkBuilder(ChunkBuilder child) : ChunkBuilder
{
    private readonly ChunkBuilder _child = child;
    private int[] _offsets = new int[17];
    private bool[]? _nulls;
    private int _count;

    public override int Count => _count;
    public override long ByteSize => 4L * _count + _child.ByteSize;

    private void GrowRows()
    {
        if (_count + 1 < _offsets.Length) return;
        int cap = _offsets.Length * 2;
        Array.Resize(ref _offsets, cap);
        if (_nulls is not null) Array.Resize(ref _nulls, cap);
    }

    private void Close()
    {
        _offsets[++_count] = _child.Count;
    }

    public override void AppendNull()
    {
        GrowRows();
        _nulls ??= new bool[_offsets.Length];
        _nulls[_count] = true;
        Close();
    }

    public override void Append(object? value)
    {
        if (value is null) { AppendNull(); return; }
        if (value is string || value is not IEnumerable e)
            throw new InvalidCastException($"cannot store a {value.GetType().Name} value in a list column (expected a list or array)");
        GrowRows();
        if (value is IList list) _child.AppendAll(list);
        else foreach (var x in e) _child.Append(x);
        Close();
    }

    public override void AppendSlice(Chunk source, int start, int count)
    {
        if (source is ListChunk l)
        {
            for (int k = 0; k < count; k++)
            {
                int r = start + k;
                if (l.IsNull(r)) { AppendNull(); continue; }
                GrowRows();
                _child.AppendSlice(l.Child, l.Offsets[r], l.ValueLength(r));
                Close();
            }
            return;
        }
        base.AppendSlice(source, start, count);
    }

    public override Chunk Build()
    {
        var chunk = new ListChunk(_offsets.AsSpan(0, _count + 1).ToArray(), _child.Build(), _count, _nulls?.AsSpan(0, _count).ToArray());
        _offsets[0] = 0;
        _nulls = null;
        _count = 0;
        return chunk;
    }
}

internal sealed class ObjectChunkBuilder : ChunkBuilder
{
    private List<object?> _values = [];
    public override int Count => _values.Count;
    public override long ByteSize => 8L * _values.Count;
    public override void Append(object? value) => _values.Add(value);
    public override void AppendNull() => _values.Add(null);

    public override Chunk Build()
    {
        var c = new ObjectChunk([.. _values], _values.Count);
        _values = [];
        return c;
    }
}
