using System.Collections;
using Peft.Datasets.Storage;

namespace Peft.Datasets;

public sealed partial class Dataset
{
    /// <summary>
    /// Applies <paramref name="function"/> to batches of rows (HF <c>map(fn, batched=True)</c>) and returns a dataset
    /// with the returned columns added or replaced. The function receives a <see cref="DatasetBatch"/> (read
    /// <c>batch.Column&lt;string&gt;("text")</c>) and returns column name → list (e.g. a tokenizer's
    /// <c>ToColumns()</c>: <c>List&lt;int[]&gt;</c> becomes a list-of-int32 column). Outputs stream into compact typed
    /// columns batch by batch; input columns that are kept are shared, not copied (copied once when the dataset has an
    /// index mapping). With <paramref name="batched"/> false the function sees one row at a time (a batch of 1).
    /// Columns in <paramref name="removeColumns"/> are dropped (a returned column of the same name is kept).
    /// A batch may return a different number of rows only when every input column is removed or replaced.
    /// </summary>
    /// <param name="function">Batch → new or replaced columns (all of one length); null means "no change".</param>
    /// <param name="batched">Give the function batches of <paramref name="batchSize"/> rows instead of single rows.</param>
    /// <param name="removeColumns">Input columns to drop from the result.</param>
    /// <param name="batchSize">Rows per batch (HF default 1000); 0 or less means the whole dataset in one batch.</param>
    /// <param name="progress">Receives the number of input rows processed after each batch.</param>
    /// <param name="cancellationToken">Checked before each batch.</param>
    public Dataset Map(Func<DatasetBatch, IReadOnlyDictionary<string, IList>> function, bool batched = false,
        IEnumerable<string>? removeColumns = null, int batchSize = 1000, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(function);
        var remove = removeColumns is null ? [] : CheckColumns(removeColumns, "remove");
        int bs = batched ? (batchSize <= 0 ? Math.Max(1, NumRows) : batchSize) : 1;
        var builders = new Dictionary<string, ChunkedColumnBuilder>(StringComparer.Ordinal);
        var order = new List<string>();
        int outRows = 0;
        bool sawOutput = false;
        for (int s = 0; s < NumRows; s += bs)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = Math.Min(bs, NumRows - s);
            IReadOnlyDictionary<string, IList>? result;
            try
            {
                result = function(new DatasetBatch(this, s, n));
            }
            catch (Exception e) when (e is not OutOfMemoryException and not OperationCanceledException)
            {
                throw new InvalidOperationException($"Map function failed on rows {s}..{s + n - 1}: {e.Message}", e);
            }
            result ??= new Dictionary<string, IList>();
            int? len = null;
            string? firstName = null;
            foreach (var (name, values) in result)
            {
                if (values is null) throw new InvalidOperationException($"Map function returned null for column '{name}' (rows {s}..{s + n - 1})");
                if (len is null) { len = values.Count; firstName = name; }
                else if (values.Count != len)
                    throw new InvalidOperationException(
                        $"Map function returned columns of unequal length for rows {s}..{s + n - 1}: '{firstName}' has {len} values but '{name}' has {values.Count}");
            }
            int rows = len ?? n;
            if (rows != n)
            {
                var kept = ColumnNames.Where(c => !remove.Contains(c) && !result.ContainsKey(c)).ToList();
                if (kept.Count > 0)
                    throw new InvalidOperationException(
                        $"Column lengths mismatch for rows {s}..{s + n - 1}: columns [{string.Join(", ", kept.Select(k => $"'{k}'"))}] have length {n} while [{string.Join(", ", result.Keys.Select(k => $"'{k}'"))}] have length {rows}; pass removeColumns to drop the input columns when the function changes the number of rows");
            }
            if (!sawOutput)
            {
                foreach (var (name, values) in result)
                {
                    var f = TypeInference.FromList(values, name);
                    builders[name] = new ChunkedColumnBuilder(f);
                    order.Add(name);
                }
                sawOutput = true;
            }
            else if (result.Count != builders.Count || result.Keys.Any(k => !builders.ContainsKey(k)))
            {
                throw new InvalidOperationException(
                    $"Map function returned columns [{string.Join(", ", result.Keys)}] for rows {s}..{s + n - 1} but [{string.Join(", ", order)}] for the first batch; every batch must return the same columns");
            }
            foreach (var (name, values) in result)
            {
                try
                {
                    builders[name].AppendList(values, name);
                }
                catch (InvalidCastException e)
                {
                    throw new InvalidCastException($"Map output for rows {s}..{s + n - 1}: {e.Message}", e);
                }
            }
            outRows += rows;
            if (progress is not null && (batched || (s + n) % 1000 == 0 || s + n == NumRows)) progress.Report(s + n);
        }
        if (NumRows == 0)
        {
            // No batch ran: keep the schema minus removed columns.
            return RemoveColumns(remove);
        }
        var outputs = order.ToDictionary(k => k, k => builders[k].Build(), StringComparer.Ordinal);
        var cols = new List<NamedColumn>();
        foreach (var c in Columns)
        {
            if (remove.Contains(c.Name)) continue;
            if (outputs.Remove(c.Name, out var replaced)) cols.Add(new NamedColumn(c.Name, replaced));
            else cols.Add(new NamedColumn(c.Name, _indices is null ? c.Column : c.Column.Gather(_indices)));
        }
        foreach (var name in order)
        {
            if (outputs.TryGetValue(name, out var col)) cols.Add(new NamedColumn(name, col));
        }
        return new Dataset(cols, null, outRows);
    }

    /// <summary>
    /// Applies <paramref name="function"/> to every row (HF <c>map(fn)</c>): the function receives a
    /// <see cref="DatasetRow"/> and returns column name → value for new or replaced columns.
    /// </summary>
    /// <param name="function">Row → new or replaced values.</param>
    /// <param name="batched">Must be false for a row function (use the <see cref="DatasetBatch"/> overload for batches).</param>
    /// <param name="removeColumns">Input columns to drop from the result.</param>
    public Dataset Map(Func<DatasetRow, IReadOnlyDictionary<string, object?>> function, bool batched = false, IEnumerable<string>? removeColumns = null)
    {
        ArgumentNullException.ThrowIfNull(function);
        if (batched) throw new ArgumentException("A row function cannot be batched; pass a Func<DatasetBatch, IReadOnlyDictionary<string, IList>> for batched=true", nameof(batched));
        return Map(batch =>
        {
            var row = this[batch.Start];
            var r = function(row);
            if (r is null) return null!;
            var d = new Dictionary<string, IList>(StringComparer.Ordinal);
            foreach (var (k, v) in r) d[k] = new List<object?> { v };
            return d;
        }, batched: false, removeColumns: removeColumns);
    }
}
