using System.Collections;

namespace Peft.Transformers;

/// <summary>HF <c>tokenizer.pad(features)</c>: pads already-tokenized rows to one length.</summary>
public static class TokenizerPadding
{
    /// <summary>
    /// Pads the token columns of <paramref name="features"/> to the longest row (or <paramref name="maxLength"/>),
    /// rounded up to a multiple of <paramref name="padToMultipleOf"/>, on the tokenizer's padding side (HF
    /// <c>tokenizer.pad(..., padding="longest")</c>): <c>input_ids</c> with the pad id, <c>attention_mask</c> with 0
    /// (created when absent), <c>token_type_ids</c> with 0, <c>special_tokens_mask</c> with 1. Other keys are copied
    /// unchanged. Token columns come back as <c>long[]</c>. Throws when the tokenizer has no pad token.
    /// </summary>
    public static List<Dictionary<string, object?>> Pad(this PreTrainedTokenizer tokenizer, IReadOnlyList<IReadOnlyDictionary<string, object?>> features,
        int? padToMultipleOf = null, int? maxLength = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(features);
        if (padToMultipleOf is <= 0) throw new ArgumentOutOfRangeException(nameof(padToMultipleOf), padToMultipleOf, "must be > 0");
        int padId = tokenizer.PadTokenId ?? throw new InvalidOperationException(
            $"Tokenizer '{tokenizer.NameOrPath}' has no pad token; set tokenizer.PadToken (e.g. to the eos token) before padding");
        var rows = features.Select(f => f.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal)).ToList();
        if (rows.Count == 0) return rows;
        if (!rows[0].ContainsKey("input_ids")) throw new ArgumentException("tokenizer.Pad needs an 'input_ids' feature in every row", nameof(features));
        var ids = rows.Select((r, i) => FeatureValues.ToLongs(r["input_ids"], "input_ids", i)).ToList();
        int target = maxLength ?? ids.Max(x => x.Length);
        if (padToMultipleOf is int m && target % m != 0) target = (target / m + 1) * m;
        bool left = tokenizer.PaddingSide == PaddingSide.Left;
        for (int i = 0; i < rows.Count; i++)
        {
            var r = rows[i];
            int n = ids[i].Length;
            if (!r.ContainsKey("attention_mask")) r["attention_mask"] = Enumerable.Repeat(1L, n).ToArray();
            foreach (var (key, value) in new (string, long)[] { ("input_ids", padId), ("attention_mask", 0), ("token_type_ids", 0), ("special_tokens_mask", 1) })
            {
                if (!r.TryGetValue(key, out var v) || v is null) continue;
                r[key] = PadRow(FeatureValues.ToLongs(v, key, i), target, value, left);
            }
        }
        return rows;
    }

    internal static long[] PadRow(long[] row, int target, long value, bool left)
    {
        if (row.Length >= target) return row;
        var result = new long[target];
        Array.Fill(result, value);
        row.CopyTo(result, left ? target - row.Length : 0);
        return result;
    }
}

/// <summary>Converts dataset feature values (boxed scalars, arrays, lists) to plain arrays, naming the key on failure.</summary>
internal static class FeatureValues
{
    public static long[] ToLongs(object? value, string key, int row) => value switch
    {
        long[] a => a,
        int[] a => a.Select(x => (long)x).ToArray(),
        short[] a => a.Select(x => (long)x).ToArray(),
        byte[] a => a.Select(x => (long)x).ToArray(),
        bool[] a => a.Select(x => x ? 1L : 0L).ToArray(),
        IEnumerable e and not string => e.Cast<object>().Select(o => Convert.ToInt64(o, System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
        _ => throw new InvalidCastException($"Feature '{key}' of row {row} is {value?.GetType().Name ?? "null"}, expected a list of integers"),
    };
}
