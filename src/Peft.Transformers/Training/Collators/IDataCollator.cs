using System.Collections;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Builds one batch of tensors from dataset rows (HF <c>DataCollator</c>). Keys are the HF model input names
/// (<c>input_ids</c>, <c>attention_mask</c>, <c>labels</c>, ...). The caller owns (disposes) the tensors; they
/// are on the CPU and the Trainer moves them to the training device.
/// </summary>
public interface IDataCollator
{
    /// <summary>Collates <paramref name="features"/> (one dictionary per row) into a batch.</summary>
    Dictionary<string, Tensor> Collate(IReadOnlyList<IReadOnlyDictionary<string, object?>> features);
}

/// <summary>
/// A collator that draws random numbers (masking) from its own generator, whose state the Trainer saves in
/// checkpoints so a resumed run draws the same numbers.
/// </summary>
public interface IRandomCollator
{
    /// <summary>The generator's state (a uint8 tensor owned by the caller).</summary>
    Tensor GetRngState();

    /// <summary>Restores a state returned by <see cref="GetRngState"/>.</summary>
    void SetRngState(Tensor state);

    /// <summary>Reseeds the generator (the Trainer seeds it with <see cref="TrainingArguments.Seed"/> at the start of a fresh run).</summary>
    void Seed(long seed);
}

/// <summary>Stacks feature values into tensors: ints → int64, floats → float32, bools → bool; lists add a dimension.</summary>
public static class FeatureStacker
{
    /// <summary>
    /// Stacks the values of <paramref name="key"/> of every row: scalars → [B], equal-length lists → [B, L], lists
    /// of lists → [B, L1, L2]. Throws naming the key and the rows when lengths differ or a value is not numeric.
    /// </summary>
    public static Tensor Stack(IReadOnlyList<IReadOnlyDictionary<string, object?>> features, string key)
    {
        var values = features.Select(f => f.TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"Row is missing feature '{key}'")).ToList();
        object? first = values[0];
        if (first is Tensor)
        {
            using var scope = NewDisposeScope();
            return stack(values.Cast<Tensor>().ToArray()).MoveToOuterDisposeScope();
        }
        if (first is IEnumerable && first is not string)
        {
            var rows = values.Select(v => ((IEnumerable)v!).Cast<object>().ToArray()).ToList();
            int len = rows[0].Length;
            for (int i = 1; i < rows.Count; i++)
                if (rows[i].Length != len)
                    throw new InvalidOperationException($"Feature '{key}' has rows of different lengths ({len} and {rows[i].Length} in row {i}); use DataCollatorWithPadding or pad in the tokenizer");
            if (len > 0 && rows[0][0] is IEnumerable && rows[0][0] is not string)
            {
                using var scope = NewDisposeScope();
                var inner = rows.Select((r, i) => Stack(r.Select(x => (IReadOnlyDictionary<string, object?>)new Dictionary<string, object?> { [key] = x }).ToList(), key)).ToArray();
                return stack(inner).MoveToOuterDisposeScope();
            }
            var flat = rows.SelectMany(r => r).ToArray();
            return Build(flat, [rows.Count, len], key);
        }
        return Build(values.ToArray(), [values.Count], key);
    }

    private static Tensor Build(object?[] flat, long[] shape, string key)
    {
        object? probe = flat.FirstOrDefault();
        try
        {
            return probe switch
            {
                bool => tensor(flat.Select(x => (bool)x!).ToArray(), shape, ScalarType.Bool),
                float or double or decimal => tensor(flat.Select(x => Convert.ToSingle(x, System.Globalization.CultureInfo.InvariantCulture)).ToArray(), shape, ScalarType.Float32),
                _ => tensor(flat.Select(x => Convert.ToInt64(x, System.Globalization.CultureInfo.InvariantCulture)).ToArray(), shape, ScalarType.Int64),
            };
        }
        catch (Exception e) when (e is InvalidCastException or FormatException or OverflowException or NullReferenceException)
        {
            throw new InvalidCastException($"Feature '{key}' cannot become a tensor: {e.Message}", e);
        }
    }

    /// <summary>Whether every row's value for <paramref name="key"/> can become a tensor (not text, not null).</summary>
    internal static bool IsNumeric(IReadOnlyList<IReadOnlyDictionary<string, object?>> features, string key) =>
        features.All(f => f.TryGetValue(key, out var v) && v is not null && v is not string && !(v is IEnumerable e && e.Cast<object>().Any(x => x is string)));
}
