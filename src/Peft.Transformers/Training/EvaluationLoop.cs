using System.Diagnostics;
using Peft.Core;
using Peft.Datasets;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// The prediction loop (HF <c>evaluation_loop</c>): the model in eval mode without gradients, the batch-size-weighted
/// mean loss, logits and labels gathered on the host (token-level outputs padded across batches with -100, as HF's
/// <c>nested_concat</c>), then <c>computeMetrics</c>; every key is prefixed (<c>eval_</c>).
/// </summary>
internal static class EvaluationLoop
{
    public static (EvalPrediction Prediction, Dictionary<string, double> Metrics) Run(
        nn.Module<ModelInput, ModelOutput> model, Dataset dataset, IDataCollator collator, int batchSize, Device device,
        IReadOnlyList<string> labelNames, Func<EvalPrediction, IReadOnlyDictionary<string, double>>? computeMetrics,
        IReadOnlySet<string>? keepColumns, string prefix)
    {
        var clock = Stopwatch.StartNew();
        bool wasTraining = model.training;
        model.eval();
        var loader = new TrainDataLoader(dataset, collator, batchSize, shuffle: false, seed: 0, dropLast: false, keepColumns, DataParallel.None);
        var logits = new List<(float[] Data, long[] Shape)>();
        var labels = new List<(long[] Data, long[] Shape)>();
        double lossSum = 0;
        long lossRows = 0;
        int batches = 0;
        try
        {
            using var _ = no_grad();
            foreach (var batch in loader.Epoch(0, 0))
            {
                using var scope = NewDisposeScope();
                scope.Attach(batch.Values);
                var input = BatchInput.ToModelInput(batch, device, labelNames);
                var output = model.forward(input);
                long rows = (input.InputIds ?? input.Labels ?? batch.Values.First()).shape[0];
                if (output.Loss is { } loss)
                {
                    lossSum += loss.to(ScalarType.Float64).item<double>() * rows;
                    lossRows += rows;
                }
                if (output.Logits is { } l) logits.Add((l.detach().to(ScalarType.Float32).cpu().data<float>().ToArray(), l.shape));
                if (input.Labels is { } y) labels.Add((y.cpu().to(ScalarType.Int64).data<long>().ToArray(), y.shape));
                batches++;
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }
        var (p, pShape) = Concat(logits, -100f);
        var (y2, yShape) = Concat(labels, -100L);
        var prediction = new EvalPrediction(p, pShape, y2, yShape);
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
        if (computeMetrics is not null && logits.Count > 0 && labels.Count > 0)
            foreach (var (k, v) in computeMetrics(prediction)) metrics[k] = v;
        if (lossRows > 0) metrics["loss"] = lossSum / lossRows;
        double seconds = clock.Elapsed.TotalSeconds;
        metrics["runtime"] = seconds;
        metrics["samples_per_second"] = dataset.NumRows / Math.Max(seconds, 1e-9);
        metrics["steps_per_second"] = batches / Math.Max(seconds, 1e-9);
        var prefixed = metrics.ToDictionary(kv => kv.Key.StartsWith(prefix + "_", StringComparison.Ordinal) ? kv.Key : $"{prefix}_{kv.Key}", kv => kv.Value, StringComparer.Ordinal);
        return (prediction, prefixed);
    }

    // Concatenates along dim 0, padding dim 1 to the longest batch (HF nested_concat with padding_index -100).
    private static (T[] Data, long[] Shape) Concat<T>(List<(T[] Data, long[] Shape)> parts, T pad)
    {
        if (parts.Count == 0) return ([], [0]);
        var shape = (long[])parts[0].Shape.Clone();
        if (shape.Length >= 2) shape[1] = parts.Max(x => x.Shape[1]);
        shape[0] = parts.Sum(x => x.Shape[0]);
        long inner = shape.Skip(2).Aggregate(1L, (a, b) => a * b);
        long rowLen = shape.Length >= 2 ? shape[1] * inner : 1;
        var data = new T[shape[0] * rowLen];
        Array.Fill(data, pad);
        long row = 0;
        foreach (var (d, s) in parts)
        {
            long srcRow = s.Length >= 2 ? s[1] * inner : 1;
            for (long r = 0; r < s[0]; r++, row++)
                Array.Copy(d, r * srcRow, data, row * rowLen, srcRow);
        }
        return (data, shape);
    }
}
