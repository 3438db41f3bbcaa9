using Peft.Datasets;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Data;

/// <summary>
/// The tensor bridge between <see cref="Dataset"/> (which knows nothing of TorchSharp) and the Trainer: HF
/// <c>dataset.with_format("torch", columns)</c>. Integer and ClassLabel columns become <c>int64</c> tensors, float
/// columns <c>float32</c>, bool columns <c>bool</c>; list columns become one more dimension and must be rectangular
/// within a batch (pad first, e.g. with a data collator, or with padding in the tokenizer).
/// </summary>
public static class DatasetTorchExtensions
{
    /// <summary>
    /// A view of <paramref name="dataset"/> that yields tensors (HF <c>with_format("torch", columns)</c>). Only
    /// <c>"torch"</c> is supported. With <paramref name="columns"/> null every numeric / bool column (and lists of them)
    /// is included and string columns are left out; a listed column that cannot become a tensor throws.
    /// </summary>
    /// <param name="dataset">The dataset.</param>
    /// <param name="type">"torch" (HF also has "numpy", "pandas", ...: not supported here).</param>
    /// <param name="columns">Columns to convert, or null for all convertible ones.</param>
    /// <param name="device">Device for the tensors (default CPU).</param>
    public static TorchFormattedDataset WithFormat(this Dataset dataset, string type, IEnumerable<string>? columns = null, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        if (!string.Equals(type, "torch", StringComparison.OrdinalIgnoreCase) && !string.Equals(type, "pt", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"Format '{type}' is not supported; only \"torch\" is", nameof(type));
        List<string> cols;
        if (columns is null)
        {
            cols = dataset.ColumnNames.Where(c => TorchFormattedDataset.KindOf(dataset.Features[c]) != TorchFormattedDataset.Kind.None).ToList();
        }
        else
        {
            cols = columns.ToList();
            foreach (var c in cols)
            {
                if (!dataset.Features.ContainsKey(c))
                    throw new ArgumentException($"Column '{c}' not in the dataset. Current columns in the dataset: [{string.Join(", ", dataset.ColumnNames)}]", nameof(columns));
                if (TorchFormattedDataset.KindOf(dataset.Features[c]) == TorchFormattedDataset.Kind.None)
                    throw new ArgumentException($"Column '{c}' ({dataset.Features[c]}) cannot be converted to a tensor; only numeric and bool values and lists of them can", nameof(columns));
            }
        }
        return new TorchFormattedDataset(dataset, cols, device ?? CPU);
    }
}

/// <summary>A dataset read as tensors; see <see cref="DatasetTorchExtensions.WithFormat"/>.</summary>
public sealed class TorchFormattedDataset
{
    internal enum Kind { None, Int, Float, Bool, IntList, FloatList, BoolList, IntList2, FloatList2 }

    private readonly Kind[] _kinds;

    internal TorchFormattedDataset(Dataset dataset, IReadOnlyList<string> columns, Device device)
    {
        Dataset = dataset;
        Columns = columns;
        Device = device;
        _kinds = columns.Select(c => KindOf(dataset.Features[c])).ToArray();
    }

    /// <summary>The underlying dataset.</summary>
    public Dataset Dataset { get; }

    /// <summary>Columns that are converted.</summary>
    public IReadOnlyList<string> Columns { get; }

    /// <summary>Device of the produced tensors.</summary>
    public Device Device { get; }

    /// <summary>Number of rows.</summary>
    public int NumRows => Dataset.NumRows;

    internal static Kind KindOf(FeatureType f) => f switch
    {
        ClassLabel => Kind.Int,
        Value { Dtype: "int32" or "int64" } => Kind.Int,
        Value { Dtype: "float32" or "float64" } => Kind.Float,
        Value { Dtype: "bool" } => Kind.Bool,
        Sequence { Feature: ClassLabel or Value { Dtype: "int32" or "int64" } } => Kind.IntList,
        Sequence { Feature: Value { Dtype: "float32" or "float64" } } => Kind.FloatList,
        Sequence { Feature: Value { Dtype: "bool" } } => Kind.BoolList,
        Sequence { Feature: Sequence { Feature: Value { Dtype: "int32" or "int64" } } } => Kind.IntList2,
        Sequence { Feature: Sequence { Feature: Value { Dtype: "float32" or "float64" } } } => Kind.FloatList2,
        _ => Kind.None,
    };

    /// <summary>One row: scalars as 0-d tensors, lists as 1-D tensors. The caller owns (disposes) the tensors.</summary>
    public Dictionary<string, Tensor> this[int index]
    {
        get
        {
            var batch = GetBatch([index]);
            var row = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (k, t) in batch)
            {
                row[k] = t[0];
                t.Dispose();
            }
            return row;
        }
    }

    /// <summary>
    /// Rows <paramref name="indices"/> stacked: scalars → [B], lists → [B, L], lists of lists → [B, L1, L2]
    /// (int64 / float32 / bool). Throws naming the column and rows when list lengths differ. The caller owns the tensors.
    /// </summary>
    public Dictionary<string, Tensor> GetBatch(IReadOnlyList<int> indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            for (int c = 0; c < Columns.Count; c++) result[Columns[c]] = Build(Columns[c], _kinds[c], indices);
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>
    /// Consecutive batches of <paramref name="batchSize"/> rows in <paramref name="order"/> (default: dataset order),
    /// as the Trainer's data loader needs. The caller owns (disposes) each batch's tensors.
    /// </summary>
    public IEnumerable<Dictionary<string, Tensor>> Batches(int batchSize, IReadOnlyList<int>? order = null, bool dropLast = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        order ??= Enumerable.Range(0, NumRows).ToArray();
        for (int s = 0; s < order.Count; s += batchSize)
        {
            int n = Math.Min(batchSize, order.Count - s);
            if (n < batchSize && dropLast) yield break;
            var idx = new int[n];
            for (int k = 0; k < n; k++) idx[k] = order[s + k];
            yield return GetBatch(idx);
        }
    }

    private Tensor Build(string name, Kind kind, IReadOnlyList<int> idx)
    {
        int b = idx.Count;
        try
        {
            switch (kind)
            {
                case Kind.Int:
                {
                    var col = Dataset.Column<long>(name);
                    var data = new long[b];
                    for (int i = 0; i < b; i++) data[i] = col[idx[i]];
                    return tensor(data, [b], ScalarType.Int64, Device);
                }
                case Kind.Float:
                {
                    var col = Dataset.Column<float>(name);
                    var data = new float[b];
                    for (int i = 0; i < b; i++) data[i] = col[idx[i]];
                    return tensor(data, [b], ScalarType.Float32, Device);
                }
                case Kind.Bool:
                {
                    var col = Dataset.Column<bool>(name);
                    var data = new bool[b];
                    for (int i = 0; i < b; i++) data[i] = col[idx[i]];
                    return tensor(data, [b], ScalarType.Bool, Device);
                }
                case Kind.IntList:
                {
                    var rows = Rows(Dataset.Column<long[]>(name), idx, name, out int len);
                    var data = new long[(long)b * len];
                    for (int i = 0; i < b; i++) rows[i].CopyTo(data, (long)i * len);
                    return tensor(data, [b, len], ScalarType.Int64, Device);
                }
                case Kind.FloatList:
                {
                    var rows = Rows(Dataset.Column<float[]>(name), idx, name, out int len);
                    var data = new float[(long)b * len];
                    for (int i = 0; i < b; i++) rows[i].CopyTo(data, (long)i * len);
                    return tensor(data, [b, len], ScalarType.Float32, Device);
                }
                case Kind.BoolList:
                {
                    var rows = Rows(Dataset.Column<bool[]>(name), idx, name, out int len);
                    var data = new bool[(long)b * len];
                    for (int i = 0; i < b; i++) rows[i].CopyTo(data, (long)i * len);
                    return tensor(data, [b, len], ScalarType.Bool, Device);
                }
                case Kind.IntList2:
                {
                    var (data, l1, l2) = Flatten2(Dataset.Column<long[][]>(name), idx, name);
                    return tensor(data, [b, l1, l2], ScalarType.Int64, Device);
                }
                case Kind.FloatList2:
                {
                    var (data, l1, l2) = Flatten2(Dataset.Column<float[][]>(name), idx, name);
                    return tensor(data, [b, l1, l2], ScalarType.Float32, Device);
                }
                default:
                    throw new InvalidOperationException($"Column '{name}' cannot be converted to a tensor");
            }
        }
        catch (InvalidCastException e)
        {
            throw new InvalidOperationException($"Column '{name}' cannot be converted to a tensor: {e.Message}", e);
        }
    }

    private static T[][] Rows<T>(IReadOnlyList<T[]> col, IReadOnlyList<int> idx, string name, out int len)
    {
        var rows = new T[idx.Count][];
        len = -1;
        for (int i = 0; i < idx.Count; i++)
        {
            rows[i] = col[idx[i]];
            if (len < 0) len = rows[i].Length;
            else if (rows[i].Length != len)
                throw new InvalidOperationException(
                    $"Column '{name}' has rows of different lengths in one batch (row {idx[0]}: {len}, row {idx[i]}: {rows[i].Length}); pad them (tokenizer padding or a data collator) before stacking into a tensor");
        }
        if (len < 0) len = 0;
        return rows;
    }

    private static (T[] Data, int L1, int L2) Flatten2<T>(IReadOnlyList<T[][]> col, IReadOnlyList<int> idx, string name)
    {
        var rows = Rows(col, idx, name, out int l1);
        int l2 = -1;
        foreach (var r in rows)
            foreach (var inner in r)
            {
                if (l2 < 0) l2 = inner.Length;
                else if (inner.Length != l2) throw new InvalidOperationException($"Column '{name}' has inner lists of different lengths ({l2} and {inner.Length}) in one batch");
            }
        if (l2 < 0) l2 = 0;
        var data = new T[(long)rows.Length * l1 * l2];
        long o = 0;
        foreach (var r in rows)
            foreach (var inner in r)
            {
                inner.CopyTo(data, o);
                o += l2;
            }
        return (data, l1, l2);
    }
}
