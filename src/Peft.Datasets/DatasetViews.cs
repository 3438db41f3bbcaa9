using System.Collections;
using Peft.Datasets.Storage;

namespace Peft.Datasets;

/// <summary>A read-only typed view of one column over a range of a dataset's (possibly index-mapped) rows.</summary>
internal sealed class ColumnView<T>(ChunkedColumn column, int[]? indices, int offset, int count, string name) : IReadOnlyList<T>, IList
{
    public int Count => count;

    public T this[int index]
    {
        get
        {
            if ((uint)index >= (uint)count) throw new ArgumentOutOfRangeException(nameof(index), index, $"column '{name}' view has {count} rows");
            int row = indices is null ? offset + index : indices[offset + index];
            try
            {
                return column.Get<T>(row);
            }
            catch (Exception e) when (e is InvalidCastException or FormatException or OverflowException)
            {
                throw new InvalidCastException($"Column '{name}' ({column.Feature}) row {index}: {e.Message}", e);
            }
        }
    }

    public IEnumerator<T> GetEnumerator()
    {
        for (int i = 0; i < count; i++) yield return this[i];
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    object? IList.this[int index] { get => this[index]; set => throw new NotSupportedException("dataset columns are read-only"); }
    bool IList.IsFixedSize => true;
    bool IList.IsReadOnly => true;
    bool ICollection.IsSynchronized => false;
    object ICollection.SyncRoot => this;
    int IList.Add(object? value) => throw new NotSupportedException("dataset columns are read-only");
    void IList.Clear() => throw new NotSupportedException("dataset columns are read-only");
    bool IList.Contains(object? value) => ((IList)this).IndexOf(value) >= 0;
    int IList.IndexOf(object? value)
    {
        for (int i = 0; i < count; i++) if (Equals(this[i], value)) return i;
        return -1;
    }
    void IList.Insert(int index, object? value) => throw new NotSupportedException("dataset columns are read-only");
    void IList.Remove(object? value) => throw new NotSupportedException("dataset columns are read-only");
    void IList.RemoveAt(int index) => throw new NotSupportedException("dataset columns are read-only");
    void ICollection.CopyTo(Array array, int index)
    {
        for (int i = 0; i < count; i++) array.SetValue(this[i], index + i);
    }
}

/// <summary>
/// One row of a dataset as a read-only dictionary column name → value (HF <c>dataset[i]</c>). Values are boxed CLR
/// values: <c>string</c>, <c>bool</c>, <c>int</c>, <c>long</c> (int64 and ClassLabel), <c>float</c>, <c>double</c>,
/// arrays for lists (<c>int[]</c>, <c>string[]</c>, <c>long[][]</c>), <c>null</c> for missing values.
/// </summary>
public sealed class DatasetRow : IReadOnlyDictionary<string, object?>
{
    private readonly Dataset _dataset;
    private readonly int _row;
    private readonly object?[] _values;
    private readonly bool[] _loaded;

    internal DatasetRow(Dataset dataset, int index, int row)
    {
        _dataset = dataset;
        Index = index;
        _row = row;
        _values = new object?[dataset.Columns.Count];
        _loaded = new bool[_values.Length];
    }

    // Values are read on first access, so a Filter on one column of a wide text dataset decodes only that column.
    private object? ValueAt(int c)
    {
        if (!_loaded[c])
        {
            _values[c] = _dataset.Columns[c].Column.GetBoxed(_row);
            _loaded[c] = true;
        }
        return _values[c];
    }

    /// <summary>The row's position in its dataset.</summary>
    public int Index { get; }

    /// <summary>The value of <paramref name="key"/> (boxed); throws naming the known columns when absent.</summary>
    public object? this[string key] => ValueAt(_dataset.ColumnIndex(key));

    /// <summary>The value converted to <typeparamref name="T"/> (e.g. <c>Get&lt;int&gt;("label")</c> on an int64 column).</summary>
    public T Get<T>(string key)
    {
        int c = _dataset.ColumnIndex(key);
        try { return _dataset.Columns[c].Column.Get<T>(_row); }
        catch (Exception e) when (e is InvalidCastException or FormatException or OverflowException)
        {
            throw new InvalidCastException($"Column '{key}' row {Index}: {e.Message}", e);
        }
    }

    /// <inheritdoc />
    public IEnumerable<string> Keys => _dataset.ColumnNames;

    /// <inheritdoc />
    public IEnumerable<object?> Values => Enumerable.Range(0, _values.Length).Select(ValueAt);

    /// <inheritdoc />
    public int Count => _values.Length;

    /// <inheritdoc />
    public bool ContainsKey(string key) => _dataset.ColumnNames.Contains(key);

    /// <inheritdoc />
    public bool TryGetValue(string key, out object? value)
    {
        bool found = _dataset.ColumnNames.Contains(key);
        value = found ? ValueAt(_dataset.ColumnIndex(key)) : null;
        return found;
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
    {
        int i = 0;
        foreach (var n in _dataset.ColumnNames) yield return new(n, ValueAt(i++));
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>HF-like text: <c>{'text': '...', 'label': 2}</c>.</summary>
    public override string ToString() => "{" + string.Join(", ", this.Select(kv => $"'{kv.Key}': {Formatting.Repr(kv.Value)}")) + "}";
}

/// <summary>
/// A batch of consecutive rows handed to a batched <see cref="Dataset.Map(Func{DatasetBatch, IReadOnlyDictionary{string, IList}}, bool, IEnumerable{string}?, int, IProgress{int}?, CancellationToken)"/>
/// (HF's batch dict of lists): <c>Column&lt;T&gt;(name)</c> gives a typed list view, <c>batch["name"]</c> a list.
/// </summary>
public sealed class DatasetBatch
{
    private readonly Dataset _dataset;

    internal DatasetBatch(Dataset dataset, int start, int count)
    {
        _dataset = dataset;
        Start = start;
        Count = count;
    }

    /// <summary>Index of the batch's first row in the dataset being mapped.</summary>
    public int Start { get; }

    /// <summary>Number of rows in the batch.</summary>
    public int Count { get; }

    /// <summary>The column names.</summary>
    public IReadOnlyList<string> ColumnNames => _dataset.ColumnNames;

    /// <summary>The batch's values of column <paramref name="name"/> as <typeparamref name="T"/> (converted when needed, e.g. int64 → int).</summary>
    public IReadOnlyList<T> Column<T>(string name) => _dataset.ColumnRange<T>(name, Start, Count);

    /// <summary>The batch's values of column <paramref name="name"/> as a list of the column's CLR type.</summary>
    public IList this[string name] => _dataset.ColumnAsList(name, Start, Count);

    /// <summary>The dataset indices of the batch's rows (HF <c>with_indices=True</c>).</summary>
    public IReadOnlyList<int> Indices => Enumerable.Range(Start, Count).ToArray();
}
