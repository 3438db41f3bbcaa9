using System.Collections;
using Peft.Datasets.Random;
using Peft.Datasets.Storage;

namespace Peft.Datasets;

/// <summary>
/// An immutable columnar table with the Hugging Face <c>datasets.Dataset</c> verbs. Columns are compact typed chunks
/// (primitive arrays, UTF-8 blob + offsets for strings, offsets + child values for lists); row-selecting verbs
/// (<see cref="Shuffle(int)"/>, <see cref="Select"/>, <see cref="Filter(Func{DatasetRow, bool})"/>, <see cref="Sort"/>,
/// <see cref="TrainTestSplit(double?, int?, double?, bool, string?)"/>) return a new dataset sharing the same columns
/// through an index mapping (no copy), as HF does. <see cref="Map(Func{DatasetBatch, IReadOnlyDictionary{string, IList}}, bool, IEnumerable{string}?, int, IProgress{int}?, CancellationToken)"/>
/// streams batch by batch and appends its outputs to new typed columns.
/// </summary>
public sealed partial class Dataset
{
    internal readonly record struct NamedColumn(string Name, ChunkedColumn Column);

    private readonly int[]? _indices;
    private readonly Dictionary<string, int> _byName;

    internal Dataset(IReadOnlyList<NamedColumn> columns, int[]? indices, int numRows)
    {
        Columns = columns;
        _indices = indices;
        NumRows = numRows;
        _byName = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < columns.Count; i++)
        {
            if (!_byName.TryAdd(columns[i].Name, i)) throw new ArgumentException($"Duplicate column name '{columns[i].Name}'");
            if (indices is null && columns[i].Column.Length != numRows)
                throw new ArgumentException($"Column '{columns[i].Name}' has {columns[i].Column.Length} rows, expected {numRows}");
        }
        Features = new Features(columns.Select(c => new KeyValuePair<string, FeatureType>(c.Name, c.Column.Feature)));
        ColumnNames = columns.Select(c => c.Name).ToArray();
    }

    internal IReadOnlyList<NamedColumn> Columns { get; }

    /// <summary>Number of rows (HF <c>num_rows</c> / <c>len(dataset)</c>).</summary>
    public int NumRows { get; }

    /// <summary>Column names in order (HF <c>column_names</c>).</summary>
    public IReadOnlyList<string> ColumnNames { get; }

    /// <summary>The column types (HF <c>features</c>).</summary>
    public Features Features { get; }

    /// <summary>(rows, columns) (HF <c>shape</c>).</summary>
    public (int Rows, int Columns) Shape => (NumRows, Columns.Count);

    /// <summary>True when rows are reached through an index mapping (after Shuffle / Select / Filter / Sort).</summary>
    public bool HasIndices => _indices is not null;

    /// <summary>Approximate bytes held by the column buffers (shared buffers counted once per dataset).</summary>
    public long ByteSize => Columns.Sum(c => c.Column.ByteSize) + 4L * (_indices?.Length ?? 0);

    internal int ColumnIndex(string name) => _byName.TryGetValue(name, out var i)
        ? i
        : throw new KeyNotFoundException($"Column '{name}' not in the dataset. Current columns in the dataset: [{string.Join(", ", ColumnNames.Select(n => $"'{n}'"))}]");

    internal int RowOf(int index) => _indices is null ? index : _indices[index];

    /// <summary>All values of column <paramref name="name"/> as <typeparamref name="T"/>: a lazy read-only view (no copy).
    /// Numeric values convert (int64 → int checked), lists convert to <c>int[]</c>, <c>long[]</c>, <c>List&lt;int&gt;</c>, ...</summary>
    public IReadOnlyList<T> Column<T>(string name) => ColumnRange<T>(name, 0, NumRows);

    internal IReadOnlyList<T> ColumnRange<T>(string name, int start, int count)
    {
        var col = Columns[ColumnIndex(name)].Column;
        return new ColumnView<T>(col, _indices, start, count, name);
    }

    internal IList ColumnAsList(string name, int start, int count)
    {
        var col = Columns[ColumnIndex(name)].Column;
        var t = col.Feature.ClrType;
        if (t.IsValueType) t = typeof(Nullable<>).MakeGenericType(t);
        var list = (IList)Activator.CreateInstance(typeof(List<>).MakeGenericType(t), count)!;
        for (int i = 0; i < count; i++) list.Add(col.GetBoxed(RowOf(start + i)));
        return list;
    }

    /// <summary>Row <paramref name="index"/> as a column → value dictionary (HF <c>dataset[i]</c>); negative indices count from the end.</summary>
    public DatasetRow this[int index]
    {
        get
        {
            int i = index < 0 ? NumRows + index : index;
            if ((uint)i >= (uint)NumRows) throw new IndexOutOfRangeException($"Index {index} out of range for dataset of size {NumRows}");
            return new DatasetRow(this, i, RowOf(i));
        }
    }

    /// <summary>Rows in <paramref name="range"/> as column name → list of values (HF <c>dataset[:5]</c>).</summary>
    public IReadOnlyDictionary<string, IList> this[Range range]
    {
        get
        {
            var (start, length) = range.GetOffsetAndLength(NumRows);
            return Slice(start, length);
        }
    }

    /// <summary>All values of a column as a list of its CLR type (HF <c>dataset["text"]</c>).</summary>
    public IList this[string column] => ColumnAsList(column, 0, NumRows);

    /// <summary><paramref name="length"/> rows from <paramref name="start"/> as column name → list (HF <c>dataset[start:start+length]</c>); clipped to the end.</summary>
    public IReadOnlyDictionary<string, IList> Slice(int start, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        start = Math.Min(start, NumRows);
        length = Math.Min(length, NumRows - start);
        var d = new Dictionary<string, IList>(StringComparer.Ordinal);
        foreach (var c in Columns) d[c.Name] = ColumnAsList(c.Name, start, length);
        return d;
    }

    /// <summary>Enumerates the rows.</summary>
    public IEnumerable<DatasetRow> Rows()
    {
        for (int i = 0; i < NumRows; i++) yield return this[i];
    }

    /// <summary>Batches of up to <paramref name="batchSize"/> rows as column → list dictionaries (HF <c>dataset.iter(batch_size)</c>).</summary>
    public IEnumerable<IReadOnlyDictionary<string, IList>> Iter(int batchSize, bool dropLastBatch = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        for (int s = 0; s < NumRows; s += batchSize)
        {
            int n = Math.Min(batchSize, NumRows - s);
            if (n < batchSize && dropLastBatch) yield break;
            yield return Slice(s, n);
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // construction

    /// <summary>
    /// A dataset from column name → list of values (HF <c>Dataset.from_dict</c>). Column types come from the lists'
    /// element types (<c>List&lt;string&gt;</c> → string, <c>int[]</c> → int32, <c>List&lt;int[]&gt;</c> → list of int32 ...)
    /// or, for <c>List&lt;object&gt;</c>, from the values; <paramref name="features"/> overrides them (e.g. a ClassLabel).
    /// </summary>
    public static Dataset FromDict(IReadOnlyDictionary<string, IList> columns, Features? features = null)
    {
        ArgumentNullException.ThrowIfNull(columns);
        var list = new List<NamedColumn>();
        int? n = null;
        string? first = null;
        foreach (var (name, values) in columns)
        {
            ArgumentNullException.ThrowIfNull(values, $"column '{name}'");
            if (n is null) { n = values.Count; first = name; }
            else if (values.Count != n) throw new ArgumentException($"Column '{name}' has {values.Count} values but column '{first}' has {n}; all columns must have the same length");
            FeatureType? f = features is not null && features.TryGetValue(name, out var ff) ? ff : null;
            list.Add(new NamedColumn(name, BuildTypedColumn(values, name, f)));
        }
        return new Dataset(list, null, n ?? 0);
    }

    private static ChunkedColumn BuildTypedColumn(IList values, string name, FeatureType? feature)
    {
        if (feature is ClassLabel cl)
        {
            var inferred = TypeInference.FromList(values, name);
            if (inferred is Value { Dtype: "string" })
                return TypeInference.BuildColumn(values.Cast<object?>().Select(v => v is null ? (object?)null : (long)cl.Str2Int((string)v)).ToList(), name, cl);
        }
        return TypeInference.BuildColumn(values, name, feature);
    }

    /// <summary>A dataset from rows (HF <c>Dataset.from_list</c>); columns in first-seen order, missing keys are null.</summary>
    public static Dataset FromRows(IEnumerable<IReadOnlyDictionary<string, object?>> rows, Features? features = null)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var cols = new Dictionary<string, List<object?>>(StringComparer.Ordinal);
        var order = new List<string>();
        int n = 0;
        foreach (var row in rows)
        {
            foreach (var (k, v) in row)
            {
                if (!cols.TryGetValue(k, out var l))
                {
                    l = new List<object?>(Enumerable.Repeat<object?>(null, n));
                    cols[k] = l;
                    order.Add(k);
                }
                l.Add(v);
            }
            n++;
            foreach (var l in cols.Values) if (l.Count < n) l.Add(null);
        }
        if (features is not null)
            foreach (var k in features.Keys.Where(k => !cols.ContainsKey(k)))
            {
                cols[k] = new List<object?>(Enumerable.Repeat<object?>(null, n));
                order.Add(k);
            }
        var dict = new Dictionary<string, IList>(StringComparer.Ordinal);
        foreach (var k in order) dict[k] = cols[k];
        return FromDict(dict, features);
    }

    /// <summary>A copy without an index mapping (HF <c>flatten_indices</c>).</summary>
    public Dataset FlattenIndices()
    {
        if (_indices is null) return this;
        return new Dataset(Columns.Select(c => new NamedColumn(c.Name, c.Column.Gather(_indices))).ToList(), null, NumRows);
    }

    private Dataset WithIndices(int[] rows) => new(Columns, rows, rows.Length);

    // ---------------------------------------------------------------------------------------------------------
    // row selection

    /// <summary>Rows at <paramref name="indices"/>, in that order (HF <c>select</c>); an index mapping, no copy.</summary>
    public Dataset Select(IEnumerable<int> indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        var src = indices as IReadOnlyCollection<int>;
        var rows = new List<int>(src?.Count ?? 16);
        foreach (var i in indices)
        {
            if ((uint)i >= (uint)NumRows) throw new IndexOutOfRangeException($"Index {i} out of range for dataset of size {NumRows}");
            rows.Add(RowOf(i));
        }
        return WithIndices([.. rows]);
    }

    /// <summary>
    /// Rows in a random order that depends only on <paramref name="seed"/> (HF <c>shuffle(seed=...)</c>): the permutation is
    /// <c>numpy.random.default_rng(seed).permutation(num_rows)</c>, so the order matches Python's. An index mapping, no copy.
    /// </summary>
    public Dataset Shuffle(int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(seed);
        var perm = new NumpyGenerator((ulong)seed).Permutation(NumRows);
        for (int i = 0; i < perm.Length; i++) perm[i] = RowOf(perm[i]);
        return WithIndices(perm);
    }

    /// <summary>Rows in a fresh random order (HF <c>shuffle()</c> without a seed).</summary>
    public Dataset Shuffle() => Shuffle(System.Random.Shared.Next(int.MaxValue));

    /// <summary>Rows for which <paramref name="predicate"/> is true (HF <c>filter</c>); an index mapping, no copy.</summary>
    public Dataset Filter(Func<DatasetRow, bool> predicate)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        var keep = new List<int>();
        for (int i = 0; i < NumRows; i++)
        {
            if (predicate(this[i])) keep.Add(RowOf(i));
        }
        return WithIndices([.. keep]);
    }

    /// <summary>Batched filter: <paramref name="predicate"/> returns one bool per row of the batch (HF <c>filter(batched=True)</c>).</summary>
    public Dataset Filter(Func<DatasetBatch, IEnumerable<bool>> predicate, bool batched, int batchSize = 1000)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        int bs = batched ? (batchSize <= 0 ? Math.Max(1, NumRows) : batchSize) : 1;
        var keep = new List<int>();
        for (int s = 0; s < NumRows; s += bs)
        {
            int n = Math.Min(bs, NumRows - s);
            var flags = predicate(new DatasetBatch(this, s, n)).ToList();
            if (flags.Count != n) throw new InvalidOperationException($"Filter function returned {flags.Count} values for a batch of {n} rows (rows {s}..{s + n - 1})");
            for (int k = 0; k < n; k++) if (flags[k]) keep.Add(RowOf(s + k));
        }
        return WithIndices([.. keep]);
    }

    /// <summary>
    /// Rows sorted by <paramref name="column"/> (HF <c>sort</c>): stable, nulls last, strings in ordinal order; an index mapping.
    /// </summary>
    public Dataset Sort(string column, bool reverse = false)
    {
        var col = Columns[ColumnIndex(column)].Column;
        var keys = new object?[NumRows];
        for (int i = 0; i < NumRows; i++) keys[i] = col.GetBoxed(RowOf(i));
        var order = Enumerable.Range(0, NumRows).ToArray();
        var cmp = Comparer<int>.Create((a, b) =>
        {
            var ka = keys[a];
            var kb = keys[b];
            if (ka is null || kb is null)
            {
                int nc = (ka is null).CompareTo(kb is null);
                return nc != 0 ? nc : a.CompareTo(b);
            }
            int c = CompareValues(ka, kb);
            if (reverse) c = -c;
            return c != 0 ? c : a.CompareTo(b);
        });
        Array.Sort(order, cmp);
        for (int i = 0; i < order.Length; i++) order[i] = RowOf(order[i]);
        return WithIndices(order);
    }

    internal static int CompareValues(object a, object b)
    {
        if (a is string sa && b is string sb) return string.CompareOrdinal(sa, sb);
        if (a is bool ba && b is bool bb) return ba.CompareTo(bb);
        if (a is IConvertible && b is IConvertible && a is not string && b is not string)
        {
            if (a is long or int && b is long or int) return Convert.ToInt64(a).CompareTo(Convert.ToInt64(b));
            return Convert.ToDouble(a).CompareTo(Convert.ToDouble(b));
        }
        if (a is Array aa && b is Array ab)
        {
            for (int i = 0; i < Math.Min(aa.Length, ab.Length); i++)
            {
                var x = aa.GetValue(i);
                var y = ab.GetValue(i);
                if (x is null || y is null) { int nc = (x is null).CompareTo(y is null); if (nc != 0) return nc; continue; }
                int c = CompareValues(x, y);
                if (c != 0) return c;
            }
            return aa.Length.CompareTo(ab.Length);
        }
        throw new InvalidOperationException($"Cannot sort values of type {a.GetType().Name}");
    }

    // ---------------------------------------------------------------------------------------------------------
    // columns

    /// <summary>Without the given columns (HF <c>remove_columns</c>); throws naming any unknown column.</summary>
    public Dataset RemoveColumns(IEnumerable<string> columns)
    {
        var set = CheckColumns(columns, "remove");
        return new Dataset(Columns.Where(c => !set.Contains(c.Name)).ToList(), _indices, NumRows);
    }

    /// <summary>Without the given columns (HF <c>remove_columns</c>).</summary>
    public Dataset RemoveColumns(params string[] columns) => RemoveColumns((IEnumerable<string>)columns);

    /// <summary>Only the given columns, in the given order (HF <c>select_columns</c>).</summary>
    public Dataset SelectColumns(params string[] columns)
    {
        CheckColumns(columns, "select");
        return new Dataset(columns.Select(n => Columns[ColumnIndex(n)]).ToList(), _indices, NumRows);
    }

    private HashSet<string> CheckColumns(IEnumerable<string> columns, string verb)
    {
        ArgumentNullException.ThrowIfNull(columns);
        var set = new HashSet<string>(columns, StringComparer.Ordinal);
        var missing = set.Where(c => !_byName.ContainsKey(c)).ToList();
        if (missing.Count > 0)
            throw new ArgumentException($"Column(s) to {verb} [{string.Join(", ", missing.Select(m => $"'{m}'"))}] not in the dataset. Current columns in the dataset: [{string.Join(", ", ColumnNames.Select(n => $"'{n}'"))}]");
        return set;
    }

    /// <summary>Column <paramref name="original"/> renamed to <paramref name="newName"/> (HF <c>rename_column</c>).</summary>
    public Dataset RenameColumn(string original, string newName)
    {
        int i = ColumnIndex(original);
        if (original != newName && _byName.ContainsKey(newName))
            throw new ArgumentException($"Column '{newName}' already exists in the dataset; cannot rename '{original}' to it");
        if (string.IsNullOrEmpty(newName)) throw new ArgumentException("New column name must not be empty", nameof(newName));
        var cols = Columns.ToList();
        cols[i] = new NamedColumn(newName, cols[i].Column);
        return new Dataset(cols, _indices, NumRows);
    }

    /// <summary>Several renames at once (HF <c>rename_columns</c>).</summary>
    public Dataset RenameColumns(IReadOnlyDictionary<string, string> mapping)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        CheckColumns(mapping.Keys, "rename");
        var cols = Columns.Select(c => new NamedColumn(mapping.TryGetValue(c.Name, out var n) ? n : c.Name, c.Column)).ToList();
        return new Dataset(cols, _indices, NumRows);
    }

    /// <summary>
    /// Column <paramref name="column"/> cast to <paramref name="feature"/> (HF <c>cast_column</c>). To a
    /// <see cref="ClassLabel"/>: strings become ids through <see cref="ClassLabel.Str2Int"/>, integers must be valid ids.
    /// To a <see cref="Value"/> / <see cref="Sequence"/>: values are converted (e.g. int64 → float32, numbers → string).
    /// </summary>
    public Dataset CastColumn(string column, FeatureType feature)
    {
        ArgumentNullException.ThrowIfNull(feature);
        int ci = ColumnIndex(column);
        var src = Columns[ci].Column;
        ChunkedColumn result;
        if (!HasClassLabel(feature) && SameStorage(src.Feature, feature))
        {
            result = src.WithFeature(feature);
        }
        else
        {
            var b = new ChunkedColumnBuilder(feature);
            for (int r = 0; r < src.Length; r++)
            {
                try { b.Append(CastValue(src.GetBoxed(r), feature)); }
                catch (Exception e) when (e is InvalidCastException or FormatException or OverflowException or ArgumentException)
                {
                    throw new ArgumentException($"Column '{column}' row {r}: cannot cast {src.Feature} to {feature}: {e.Message}", e);
                }
            }
            result = b.Build();
        }
        var cols = Columns.ToList();
        cols[ci] = new NamedColumn(column, result);
        return new Dataset(cols, _indices, NumRows);
    }

    private static bool SameStorage(FeatureType a, FeatureType b) =>
        a == b || (a is ClassLabel && b is Value { Dtype: "int64" }) || (a is Value { Dtype: "int64" } && b is ClassLabel)
        || (a is Sequence sa && b is Sequence sb && SameStorage(sa.Feature, sb.Feature));

    private static bool HasClassLabel(FeatureType f) => f is ClassLabel || f is Sequence s && HasClassLabel(s.Feature);

    /// <summary>Converts one value for a cast: class names → ids (also inside lists, e.g. NER tags), ids checked.</summary>
    private static object? CastValue(object? v, FeatureType target)
    {
        if (v is null) return null;
        switch (target)
        {
            case ClassLabel cl:
                if (v is string s) return (long)cl.Str2Int(s);
                if (v is int or long or short or byte or sbyte or uint)
                {
                    long id = Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture);
                    if (id < -1 || id >= cl.NumClasses) throw new ArgumentException($"class id {id} is not in [0, {cl.NumClasses}) (-1 marks a missing label)");
                    return id;
                }
                throw new InvalidCastException($"a {v.GetType().Name} value cannot become a ClassLabel id");
            case Sequence seq when HasClassLabel(seq.Feature) && v is Array a:
                var res = new object?[a.Length];
                for (int i = 0; i < a.Length; i++) res[i] = CastValue(a.GetValue(i), seq.Feature);
                return res;
            default:
                return v;
        }
    }

    /// <summary>Casts several columns (HF <c>cast</c>); columns not in <paramref name="features"/> keep their type.</summary>
    public Dataset Cast(Features features)
    {
        ArgumentNullException.ThrowIfNull(features);
        var ds = this;
        foreach (var (k, f) in features) ds = ds.CastColumn(k, f);
        return ds;
    }

    /// <summary>
    /// Turns a column into a <see cref="ClassLabel"/> whose names are the sorted distinct values as strings
    /// (HF <c>class_encode_column</c>): ids follow that sorted order.
    /// </summary>
    public Dataset ClassEncodeColumn(string column)
    {
        int ci = ColumnIndex(column);
        var feature = Columns[ci].Column.Feature;
        if (feature is not Value v || v.Dtype == "null")
            throw new ArgumentException($"Class encoding is only supported for Value columns, and column '{column}' is {feature}");
        var names = Unique(column).Where(x => x is not null).Select(x => Formatting.Str(x)).Distinct(StringComparer.Ordinal)
            .OrderBy(s => s, StringComparer.Ordinal).ToList();
        var cl = new ClassLabel(names);
        var src = Columns[ci].Column;
        var b = new ChunkedColumnBuilder(cl);
        for (int r = 0; r < src.Length; r++)
        {
            var x = src.GetBoxed(r);
            b.Append(x is null ? null : (long)cl.Str2Int(Formatting.Str(x)));
        }
        var cols = Columns.ToList();
        cols[ci] = new NamedColumn(column, b.Build());
        return new Dataset(cols, _indices, NumRows);
    }

    /// <summary>Distinct values of a column in order of first appearance (HF <c>unique</c>; nulls included).</summary>
    public IReadOnlyList<object?> Unique(string column)
    {
        var col = Columns[ColumnIndex(column)].Column;
        var seen = new HashSet<object>(new ValueEqualityComparer());
        var result = new List<object?>();
        bool sawNull = false;
        for (int i = 0; i < NumRows; i++)
        {
            var v = col.GetBoxed(RowOf(i));
            if (v is null)
            {
                if (!sawNull) { sawNull = true; result.Add(null); }
            }
            else if (seen.Add(v)) result.Add(v);
        }
        return result;
    }

    /// <summary>A dataset with one more column (HF <c>add_column</c>); <paramref name="values"/> must have <see cref="NumRows"/> values.</summary>
    public Dataset AddColumn(string name, IList values, FeatureType? feature = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (_byName.ContainsKey(name)) throw new ArgumentException($"Column '{name}' already exists in the dataset");
        if (values.Count != NumRows) throw new ArgumentException($"Column '{name}' has {values.Count} values but the dataset has {NumRows} rows");
        var flat = FlattenIndices();
        var cols = flat.Columns.ToList();
        cols.Add(new NamedColumn(name, BuildTypedColumn(values, name, feature)));
        return new Dataset(cols, null, NumRows);
    }

    /// <summary>Rows of several datasets with the same features, one after the other (HF <c>concatenate_datasets</c>).</summary>
    public static Dataset Concatenate(params Dataset[] datasets) => Concatenate((IEnumerable<Dataset>)datasets);

    /// <summary>Rows of several datasets with the same features, one after the other (HF <c>concatenate_datasets</c>).</summary>
    public static Dataset Concatenate(IEnumerable<Dataset> datasets)
    {
        var list = datasets.ToList();
        if (list.Count == 0) throw new ArgumentException("Unable to concatenate an empty list of datasets");
        var first = list[0];
        for (int d = 1; d < list.Count; d++)
        {
            var f = list[d].Features;
            if (f.Count != first.Features.Count || first.Features.Any(kv => !f.TryGetValue(kv.Key, out var ft) || ft != kv.Value))
                throw new ArgumentException($"The features can't be aligned: dataset 0 has {first.Features} but dataset {d} has {f}");
        }
        var flats = list.Select(d => d.FlattenIndices()).ToList();
        var cols = first.Columns.Select(c => new NamedColumn(c.Name,
            ChunkedColumn.Concat(c.Column.Feature, flats.Select(fd => fd.Columns[fd.ColumnIndex(c.Name)].Column)))).ToList();
        return new Dataset(cols, null, flats.Sum(f => f.NumRows));
    }

    // ---------------------------------------------------------------------------------------------------------
    // split

    /// <summary>
    /// Splits into "train" and "test" (HF <c>train_test_split</c>). Sizes as fractions in (0, 1): test = ceil(n·testSize),
    /// train = floor(n·trainSize), the other one fills the rest (default testSize 0.25). With <paramref name="shuffle"/>
    /// the rows come from <c>numpy.random.default_rng(seed).permutation(n)</c> (test first), like Python; with
    /// <paramref name="stratifyByColumn"/> (a ClassLabel column) class proportions are kept as HF's stratified split does.
    /// </summary>
    /// <param name="testSize">Fraction of rows for "test" (default 0.25 when neither size is given).</param>
    /// <param name="seed">Seed of the numpy generator (non-negative); null picks a random one.</param>
    /// <param name="trainSize">Fraction of rows for "train"; default: the rest.</param>
    /// <param name="shuffle">Shuffle before splitting (default true); false takes the first rows for train.</param>
    /// <param name="stratifyByColumn">A ClassLabel column whose class proportions both splits keep.</param>
    public DatasetDict TrainTestSplit(double? testSize = null, int? seed = null, double? trainSize = null, bool shuffle = true, string? stratifyByColumn = null)
        => SplitCore(testSize is null ? null : new SplitSize(testSize.Value, false), trainSize is null ? null : new SplitSize(trainSize.Value, false), seed, shuffle, stratifyByColumn);

    /// <summary><see cref="TrainTestSplit(double?, int?, double?, bool, string?)"/> with absolute row counts.</summary>
    /// <param name="testSize">Rows for "test".</param>
    /// <param name="seed">Seed of the numpy generator (non-negative); null picks a random one.</param>
    /// <param name="trainSize">Rows for "train"; default: the rest.</param>
    /// <param name="shuffle">Shuffle before splitting (default true).</param>
    /// <param name="stratifyByColumn">A ClassLabel column whose class proportions both splits keep.</param>
    public DatasetDict TrainTestSplit(int testSize, int? seed = null, int? trainSize = null, bool shuffle = true, string? stratifyByColumn = null)
        => SplitCore(new SplitSize(testSize, true), trainSize is null ? null : new SplitSize(trainSize.Value, true), seed, shuffle, stratifyByColumn);

    private readonly record struct SplitSize(double Value, bool IsCount);

    private DatasetDict SplitCore(SplitSize? test, SplitSize? train, int? seed, bool shuffle, string? stratifyByColumn)
    {
        int n = NumRows;
        if (n == 0) throw new InvalidOperationException("Dataset is empty; cannot split it");
        if (test is null && train is null) test = new SplitSize(0.25, false);
        static void Check(SplitSize? s, string name, int n)
        {
            if (s is not { } v) return;
            if (v.IsCount ? v.Value >= n || v.Value <= 0 : v.Value <= 0 || v.Value >= 1)
                throw new ArgumentException($"{name}={v.Value} should be either positive and smaller than the number of samples {n} or a float in the (0, 1) range");
        }
        Check(test, "test_size", n);
        Check(train, "train_size", n);
        if (test is { IsCount: false } t0 && train is { IsCount: false } t1 && t0.Value + t1.Value > 1)
            throw new ArgumentException($"The sum of test_size and train_size = {t0.Value + t1.Value}, should be in the (0, 1) range. Reduce test_size and/or train_size.");
        double nTest = test is { } ts ? (ts.IsCount ? ts.Value : Math.Ceiling(ts.Value * n)) : 0;
        double nTrain = train is { } tr ? (tr.IsCount ? tr.Value : Math.Floor(tr.Value * n)) : 0;
        if (train is null) nTrain = n - nTest;
        else if (test is null) nTest = n - nTrain;
        if (nTrain + nTest > n)
            throw new ArgumentException($"The sum of train_size and test_size = {nTrain + nTest}, should be smaller than the number of samples {n}. Reduce test_size and/or train_size.");
        int nTr = (int)nTrain, nTe = (int)nTest;
        if (nTr == 0) throw new ArgumentException($"With n_samples={n}, test_size={test?.Value} and train_size={train?.Value}, the resulting train set will be empty. Adjust any of the aforementioned parameters.");

        IReadOnlyList<int> trainIdx, testIdx;
        if (!shuffle)
        {
            if (stratifyByColumn is not null) throw new ArgumentException("Stratified train/test split is not implemented for `shuffle=False`");
            trainIdx = Enumerable.Range(0, nTr).ToArray();
            testIdx = Enumerable.Range(nTr, nTe).ToArray();
        }
        else
        {
            if (seed < 0) throw new ArgumentOutOfRangeException(nameof(seed), seed, "numpy seeds must be non-negative");
            var rng = new NumpyGenerator((ulong)(seed ?? System.Random.Shared.Next(int.MaxValue)));
            if (stratifyByColumn is not null)
            {
                if (!_byName.ContainsKey(stratifyByColumn)) throw new ArgumentException($"Key {stratifyByColumn} not found in [{string.Join(", ", ColumnNames)}]");
                if (Features[stratifyByColumn] is not ClassLabel)
                    throw new ArgumentException($"Stratifying by column is only supported for ClassLabel column, and column {stratifyByColumn} is {Features[stratifyByColumn]}.");
                var y = Column<long>(stratifyByColumn).ToArray();
                (trainIdx, testIdx) = Stratify.Split(y, nTr, nTe, rng, stratifyByColumn);
            }
            else
            {
                var perm = rng.Permutation(n);
                testIdx = perm.AsSpan(0, nTe).ToArray();
                trainIdx = perm.AsSpan(nTe, nTr).ToArray();
            }
        }
        return new DatasetDict { ["train"] = Select(trainIdx), ["test"] = Select(testIdx) };
    }

    // ---------------------------------------------------------------------------------------------------------
    // text

    /// <summary>HF repr: <c>Dataset({ features: [...], num_rows: N })</c>.</summary>
    public override string ToString() => Formatting.DatasetRepr(this, 0);

    /// <summary>A pandas-like table of the first <paramref name="maxRows"/> rows (ClassLabel ids shown as names).</summary>
    public string ToPrettyString(int maxRows = 5, int maxColumnWidth = 60)
        => Formatting.Table(this, Enumerable.Range(0, Math.Min(maxRows, NumRows)).ToList(), maxColumnWidth);

    /// <summary>
    /// A table of <paramref name="numExamples"/> distinct random rows with ClassLabel ids replaced by names — the
    /// course notebooks' <c>show_random_elements</c>.
    /// </summary>
    public string ShowRandomElements(int numExamples = 10, int? seed = null, int maxColumnWidth = 60)
    {
        if (numExamples > NumRows) throw new ArgumentException($"Can't pick {numExamples} elements from a dataset of {NumRows} rows");
        var rnd = seed is null ? new System.Random() : new System.Random(seed.Value);
        var picks = new List<int>();
        var set = new HashSet<int>();
        while (picks.Count < numExamples)
        {
            int p = rnd.Next(NumRows);
            if (set.Add(p)) picks.Add(p);
        }
        return Formatting.Table(this, picks, maxColumnWidth);
    }
}

/// <summary>Equality of boxed column values, including arrays by content (for <see cref="Dataset.Unique"/>).</summary>
internal sealed class ValueEqualityComparer : IEqualityComparer<object>
{
    public new bool Equals(object? x, object? y)
    {
        if (x is Array ax && y is Array ay)
        {
            if (ax.Length != ay.Length) return false;
            for (int i = 0; i < ax.Length; i++) if (!Equals(ax.GetValue(i), ay.GetValue(i))) return false;
            return true;
        }
        return object.Equals(x, y);
    }

    public int GetHashCode(object obj)
    {
        if (obj is Array a)
        {
            int h = 17;
            foreach (var x in a) h = h * 31 + (x is null ? 0 : GetHashCode(x));
            return h;
        }
        return obj.GetHashCode();
    }
}
