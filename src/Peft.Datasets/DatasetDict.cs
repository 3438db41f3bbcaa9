using System.Collections;
using System.Text;

namespace Peft.Datasets;

/// <summary>
/// Split name → <see cref="Dataset"/> (HF <c>DatasetDict</c>), in insertion order; the dataset verbs apply to every split.
/// </summary>
public sealed class DatasetDict : IReadOnlyDictionary<string, Dataset>
{
    private readonly List<string> _order = [];
    private readonly Dictionary<string, Dataset> _splits = new(StringComparer.Ordinal);

    /// <summary>An empty dict.</summary>
    public DatasetDict() { }

    /// <summary>A dict of the given splits.</summary>
    public DatasetDict(IEnumerable<KeyValuePair<string, Dataset>> splits)
    {
        foreach (var (k, v) in splits) this[k] = v;
    }

    /// <summary>The split <paramref name="split"/>; throws naming the known splits when absent.</summary>
    public Dataset this[string split]
    {
        get => _splits.TryGetValue(split, out var d) ? d : throw new KeyNotFoundException($"Split '{split}' not found; splits: [{string.Join(", ", _order)}]");
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            if (!_splits.ContainsKey(split)) _order.Add(split);
            _splits[split] = value;
        }
    }

    /// <inheritdoc />
    public IEnumerable<string> Keys => _order;

    /// <inheritdoc />
    public IEnumerable<Dataset> Values => _order.Select(k => _splits[k]);

    /// <inheritdoc />
    public int Count => _order.Count;

    /// <inheritdoc />
    public bool ContainsKey(string key) => _splits.ContainsKey(key);

    /// <inheritdoc />
    public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out Dataset value) => _splits.TryGetValue(key, out value);

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, Dataset>> GetEnumerator() => _order.Select(k => new KeyValuePair<string, Dataset>(k, _splits[k])).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Rows per split (HF <c>num_rows</c>).</summary>
    public IReadOnlyDictionary<string, int> NumRows => _order.ToDictionary(k => k, k => _splits[k].NumRows);

    /// <summary>Column names per split (HF <c>column_names</c>).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> ColumnNames => _order.ToDictionary(k => k, k => _splits[k].ColumnNames);

    private DatasetDict Apply(Func<Dataset, Dataset> f) => new(_order.Select(k => new KeyValuePair<string, Dataset>(k, f(_splits[k]))));

    /// <summary>Batched <see cref="Dataset.Map(Func{DatasetBatch, IReadOnlyDictionary{string, IList}}, bool, IEnumerable{string}?, int, IProgress{int}?, CancellationToken)"/> on every split.</summary>
    public DatasetDict Map(Func<DatasetBatch, IReadOnlyDictionary<string, IList>> function, bool batched = false, IEnumerable<string>? removeColumns = null, int batchSize = 1000)
    {
        var remove = removeColumns?.ToList();
        return Apply(d => d.Map(function, batched, remove, batchSize));
    }

    /// <summary>Row <see cref="Dataset.Map(Func{DatasetRow, IReadOnlyDictionary{string, object}}, bool, IEnumerable{string}?)"/> on every split.</summary>
    public DatasetDict Map(Func<DatasetRow, IReadOnlyDictionary<string, object?>> function, bool batched = false, IEnumerable<string>? removeColumns = null)
    {
        var remove = removeColumns?.ToList();
        return Apply(d => d.Map(function, batched, remove));
    }

    /// <summary><see cref="Dataset.Filter(Func{DatasetRow, bool})"/> on every split.</summary>
    public DatasetDict Filter(Func<DatasetRow, bool> predicate) => Apply(d => d.Filter(predicate));

    /// <summary><see cref="Dataset.Shuffle(int)"/> on every split (same seed for each, as HF with one seed).</summary>
    public DatasetDict Shuffle(int seed) => Apply(d => d.Shuffle(seed));

    /// <summary><see cref="Dataset.Sort"/> on every split.</summary>
    public DatasetDict Sort(string column, bool reverse = false) => Apply(d => d.Sort(column, reverse));

    /// <summary><see cref="Dataset.RemoveColumns(IEnumerable{string})"/> on every split.</summary>
    public DatasetDict RemoveColumns(params string[] columns) => Apply(d => d.RemoveColumns(columns));

    /// <summary><see cref="Dataset.SelectColumns"/> on every split.</summary>
    public DatasetDict SelectColumns(params string[] columns) => Apply(d => d.SelectColumns(columns));

    /// <summary><see cref="Dataset.RenameColumn"/> on every split.</summary>
    public DatasetDict RenameColumn(string original, string newName) => Apply(d => d.RenameColumn(original, newName));

    /// <summary><see cref="Dataset.CastColumn"/> on every split.</summary>
    public DatasetDict CastColumn(string column, FeatureType feature) => Apply(d => d.CastColumn(column, feature));

    /// <summary>
    /// <see cref="Dataset.ClassEncodeColumn"/> on every split, each with its own sorted label set, exactly as HF's
    /// <c>DatasetDict.class_encode_column</c> (if a split lacks a value the ids can differ between splits; cast every
    /// split to one <see cref="ClassLabel"/> with <see cref="CastColumn"/> to share them).
    /// </summary>
    public DatasetDict ClassEncodeColumn(string column) => Apply(d => d.ClassEncodeColumn(column));

    /// <summary><see cref="Dataset.FlattenIndices"/> on every split.</summary>
    public DatasetDict FlattenIndices() => Apply(d => d.FlattenIndices());

    /// <summary>HF repr: <c>DatasetDict({ train: Dataset({...}) ... })</c>.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder("DatasetDict({\n");
        foreach (var k in _order) sb.Append("    ").Append(k).Append(": ").Append(Formatting.DatasetRepr(_splits[k], 4)).Append('\n');
        return sb.Append("})").ToString();
    }
}
