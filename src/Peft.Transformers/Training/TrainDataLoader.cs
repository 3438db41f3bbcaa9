using Peft.Core;
using Peft.Datasets;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Yields collated micro-batches of a <see cref="Dataset"/> (HF's DataLoader + sampler). The order of epoch
/// <c>e</c> is a torch <c>randperm</c> from a generator seeded with <c>seed + e</c> (accelerate's seedable sampler),
/// or the dataset order when shuffling is off, so the position in the data is fully described by (epoch, batch
/// index) and a resumed run skips to it without collating the skipped rows. Under data parallelism each rank reads
/// its <see cref="Peft.Core.Distributed.DistributedSampler"/> shard of that order (PyTorch's rule: padded, stride
/// world size), so batch b of every rank together is batch b of one process with the global batch size.
/// </summary>
internal sealed class TrainDataLoader(Dataset dataset, IDataCollator collator, int batchSize, bool shuffle, int seed, bool dropLast, IReadOnlySet<string>? keepColumns,
    DataParallel parallel)
{
    public int NumRows => dataset.NumRows;

    private int RowsPerEpoch => parallel.RowsPerEpoch(dataset.NumRows, dropLast: false);

    public int BatchesPerEpoch => dropLast ? RowsPerEpoch / batchSize : (RowsPerEpoch + batchSize - 1) / batchSize;

    /// <summary>This rank's row order of <paramref name="epoch"/> (one process: <c>randperm</c> seeded with seed + epoch, or 0..n-1).</summary>
    public int[] Order(int epoch) => parallel.Order(dataset.NumRows, shuffle, seed, epoch, dropLast: false);

    /// <summary>The micro-batches of <paramref name="epoch"/> from batch <paramref name="skip"/> on; the caller disposes each.</summary>
    public IEnumerable<Dictionary<string, Tensor>> Epoch(int epoch, int skip)
    {
        var order = Order(epoch);
        for (int b = skip; b < BatchesPerEpoch; b++)
        {
            int start = b * batchSize, n = Math.Min(batchSize, order.Length - start);
            var rows = new IReadOnlyDictionary<string, object?>[n];
            for (int k = 0; k < n; k++) rows[k] = Row(order[start + k]);
            yield return collator.Collate(rows);
        }
    }

    private IReadOnlyDictionary<string, object?> Row(int index)
    {
        var row = dataset[index];
        return keepColumns is null ? row : row.Where(kv => keepColumns.Contains(kv.Key)).ToDictionary();
    }
}

/// <summary>Maps a collated batch (HF input names) to <see cref="ModelInput"/>, moving each tensor to the device.</summary>
internal static class BatchInput
{
    /// <summary>The forward arguments a model takes (HF removes other dataset columns when <c>remove_unused_columns</c>).</summary>
    public static readonly IReadOnlySet<string> ModelColumns = new HashSet<string>(StringComparer.Ordinal)
    {
        "input_ids", "attention_mask", "token_type_ids", "position_ids", "labels", "label", "label_ids",
        "start_positions", "end_positions", "special_tokens_mask",
    };

    public static ModelInput ToModelInput(Dictionary<string, Tensor> batch, Device device, IReadOnlyList<string> labelNames)
    {
        Tensor? Get(string k) => batch.TryGetValue(k, out var t) ? (t.device == device ? t : t.to(device)) : null;
        foreach (var key in batch.Keys)
            if (!ModelColumns.Contains(key) && !labelNames.Contains(key))
                throw new ArgumentException($"Batch key '{key}' is not a model input (known: {string.Join(", ", ModelColumns)}); remove the column or set TrainingArguments.RemoveUnusedColumns", nameof(batch));
        return new ModelInput
        {
            InputIds = Get("input_ids"),
            AttentionMask = Get("attention_mask"),
            TokenTypeIds = Get("token_type_ids"),
            PositionIds = Get("position_ids"),
            Labels = Get(labelNames.Count > 0 && labelNames[0] != "start_positions" ? labelNames[0] : "labels"),
            StartPositions = Get("start_positions"),
            EndPositions = Get("end_positions"),
        };
    }
}
