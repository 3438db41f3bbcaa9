using Peft.Core;
using TorchSharp;
using static TorchSharp.torch;
using Peft.Transformers.Optimization;
using Peft.Core.Torch;

namespace Peft.Transformers;

/// <summary>
/// One optimizer step (HF <c>training_step</c> × gradient accumulation + the update): forward and backward of each
/// micro-batch in its own dispose scope, the method's loss term (<see cref="ITrainingHooks.LossTerm"/>) added
/// before backward, clipping, <c>optimizer.step()</c>, <c>scheduler.step()</c>, the method's
/// <see cref="ITrainingHooks.OnOptimizerStep"/>, then <c>zero_grad</c>.
/// </summary>
/// <remarks>
/// Gradient accumulation equals one large batch: each micro-batch loss (a mean over its items) is weighted by its
/// share of the step's items, so the summed gradients are those of the mean over all items. Items are the labels
/// that enter the loss: for a causal LM the shifted labels <c>labels[..., 1:] != -100</c>, for other token-level
/// labels <c>labels != -100</c>, else rows. HF 5.17 counts <c>labels != -100</c> without the shift for causal LMs
/// (<c>num_items_in_batch</c>), so its causal-LM loss is smaller than the model's own mean by the rows' first
/// labels; the reference trajectories are the model's mean, which is what this reproduces. With one micro-batch the
/// weight is exactly 1. Under data parallelism (<see cref="DataParallel"/>) the items are counted over all ranks,
/// each rank's weights are scaled by the world size, and the gradients are averaged before clipping, so the step
/// equals one process reading the global batch.
/// </remarks>
internal sealed class TrainStep(nn.Module<ModelInput, ModelOutput> model, TrainableParameters trainable, TrainerOptimizer optimizer,
    LrSchedule schedule, double maxGradNorm, Device device, IReadOnlyList<string> labelNames, bool causalLm, DataParallel parallel,
    CudaGraphTrainStep? graph = null) : IDisposable
{
    private readonly ITrainingHooks? _hooks = model as ITrainingHooks;
    private List<IReadOnlyList<Tensor>>? _clipRuns;   // the trainable parameters in the optimizer's flat runs (GradClip.RunsOf)

    /// <summary>Called once per distinct reason a graph step ran eagerly (batches of other shapes), with the reason.</summary>
    public Action<string>? OnEagerGraphStep
    {
        set
        {
            if (graph is not null) graph.OnEagerReason = value;
        }
    }

    /// <summary>Runs the step over <paramref name="microBatches"/> (disposed here); returns the step's loss and pre-clip gradient norm.</summary>
    public (double Loss, double GradNorm, long Tokens) Run(IReadOnlyList<Dictionary<string, Tensor>> microBatches, int globalStep)
    {
        if (graph is not null && microBatches.Count == 1) return RunGraph(microBatches[0], globalStep);
        var items = microBatches.Select(CountItems).ToArray();
        double total = parallel.Sum(items.Sum());
        Tensor? loss = null, norm = null;                     // 0-d, on the device, in no dispose scope: read once, after the update is queued
        try
        {
            long tokens = 0;
            for (int i = 0; i < microBatches.Count; i++)
            {
                using var scope = NewDisposeScope();
                scope.Attach(microBatches[i].Values);
                var input = BatchInput.ToModelInput(microBatches[i], device, labelNames);
                var output = model.forward(input);
                var l = output.Loss ?? throw new InvalidOperationException(
                    $"{model.GetType().Name}.forward returned no loss; the batch needs labels (keys: {string.Join(", ", microBatches[i].Keys)})");
                StepOutputs.DropAllButLoss(output);
                double weight = total > 0 ? items[i] / total * parallel.WorldSize : 1.0 / microBatches.Count; // GA / DP = one large batch
                if (weight != 1.0) l = l * HeldScalars.Of(weight);
                if (_hooks?.LossTerm() is { } term) l = l.add(term, HeldScalars.One);
                l.backward();
                var lossValue = l.detach().to(ScalarType.Float64);
                var sum = loss is null ? lossValue : loss.add(lossValue, HeldScalars.One);   // float64, in micro-batch order as the host sum was
                loss?.Dispose();
                loss = sum.DetachFromDisposeScope();
                tokens += Tokens(microBatches[i]);
            }
            trainable.GradientsToMasters();
            parallel.AverageGradients(trainable.ForOptimizer.Select(p => p.Param).ToList());
            _clipRuns ??= GradClip.RunsOf(optimizer, trainable.ForOptimizer.Select(p => (Tensor)p.Param).ToList());
            using (NewDisposeScope()) norm = GradClip.NormAndClip(_clipRuns, maxGradNorm).DetachFromDisposeScope();
            optimizer.SetLr(schedule.LastLr);
            optimizer.Step();
            schedule.Step();
            trainable.MastersToModel();
            _hooks?.OnOptimizerStep(globalStep);
            optimizer.ZeroGrad();
            model.zero_grad();
            // The step's one host read, after the update is queued (HF's Trainer reads its loss for the NaN filter after
            // backward; reading there, and the norm before the optimizer, would let the GPU idle while the host queues the
            // clip and the optimizer's kernels): the micro-batch losses summed in float64, as the host sum was, and the norm.
            var (lossSum, normValue) = ReadBack(loss!, norm);
            // glibc keeps the step's freed activations mapped (RSS grew ~170 MB per full-FT step of OPT-125m with zero .NET
            // GCs); malloc_trim hands them back, so CPU peak RSS stays flat, once a step ends more than a margin above the
            // level the first step after the last trim ended at (a settled LoRA heap is left alone; bench/README.md).
            // PEFT_MALLOC_TRIM=0 turns it off.
            if (device.type == DeviceType.CPU && NativeHeap.TrimAtSteps) NativeHeap.TrimIfGrown(NativeHeap.StepTrimMarginBytes);
            return (parallel.Sum(lossSum) / parallel.WorldSize, normValue, (long)parallel.Sum(tokens));
        }
        finally
        {
            loss?.Dispose();
            norm?.Dispose();
        }
    }

    // Both 0-d values in one device-to-host copy: [loss, norm] as float64.
    private static (double Loss, double Norm) ReadBack(Tensor loss, Tensor norm)
    {
        using var scope = NewDisposeScope();
        var both = cat([loss.reshape(1), norm.to(loss.device).to(ScalarType.Float64).reshape(1)]).cpu().data<double>().ToArray();
        return (both[0], both[1]);
    }

    // One step through the CUDA-graph step: the same order as Run (forward, loss term, backward, masters, clip, AdamW,
    // masters back) inside the graph; the lr schedule, the method's hook and zero_grad around it.
    private (double Loss, double GradNorm, long Tokens) RunGraph(Dictionary<string, Tensor> batch, int globalStep)
    {
        using var scope = NewDisposeScope();
        scope.Attach(batch.Values);
        var input = BatchInput.ToModelInput(batch, device, labelNames);
        optimizer.SetLr(schedule.LastLr);
        var (loss, norm) = graph!.Run(input);
        var (lossValue, normValue) = ReadBack(loss.to(ScalarType.Float64), norm);
        long tokens = Tokens(batch);
        schedule.Step();
        _hooks?.OnOptimizerStep(globalStep);
        optimizer.ZeroGrad();
        return (lossValue, normValue, tokens);
    }

    // Non-padding tokens of a batch, counted on the collator's tensor (host memory: no device kernel, no sync).
    private static long Tokens(Dictionary<string, Tensor> batch) =>
        batch.TryGetValue("attention_mask", out var m) ? m.sum().item<long>() : 0;

    /// <summary>Releases the CUDA-graph step, if any.</summary>
    public void Dispose() => graph?.Dispose();

    private double CountItems(Dictionary<string, Tensor> batch)
    {
        string key = labelNames.Count > 0 ? labelNames[0] : "labels";
        if (!batch.TryGetValue(key, out var labels)) return batch.Values.First().shape[0];
        if (labels.dim() < 2 || labels.is_floating_point()) return labels.shape[0];
        using var scope = NewDisposeScope();
        var counted = causalLm ? labels[.., 1..] : labels;
        return counted.ne(HeldScalars.Of(-100)).sum().item<long>();
    }
}
