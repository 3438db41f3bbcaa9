using Peft.Core;
using Peft.Core.Torch;
using Peft.Transformers.Optimization;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// A whole training step — zero_grad(set_to_none), forward with labels, the method's loss term, backward, the
/// gradients onto fp32 masters, clipping, AdamW, the masters back into the model — captured once as a CUDA graph
/// and replayed for every later batch of the same shapes (PyTorch's whole-network capture recipe,
/// <c>torch.cuda.graph</c> around <c>loss.backward(); optimizer.step()</c>, with AdamW's <c>capturable=True</c>).
/// One replay launches the step's hundreds of kernels with one call, which is what a small model on a fast GPU is
/// bound by.
/// </summary>
/// <remarks>
/// <para>The first <see cref="Run"/> is a real step run eagerly on the capture's side stream (the warm-up), then the
/// same body is captured; later batches are copied into the captured input tensors and the graph replays. A batch
/// of other shapes (or other inputs set) runs the same body eagerly: the results are the same arithmetic either way.</para>
/// <para>The step-dependent optimizer values (lr, bias corrections) are device tensors filled before each step
/// (<see cref="AdamW.PrepareGraphStep"/>), so the lr schedule and the step count advance as in eager training; the
/// host step counters that checkpoints save advance after each step. Dropout draws come from the CUDA generator's
/// graph-safe Philox offsets (as under <c>torch.cuda.graph</c>): random per replay, not the eager run's sequence.</para>
/// <para>After a replay, the parameters' <c>grad</c> tensors are the ones the capture made (their contents are this
/// step's); returned loss and norm tensors belong to this object and are overwritten by the next step.</para>
/// <para>Not for: gradient accumulation, data parallelism (their steps are several forwards per update),
/// optimizers other than <see cref="AdamW"/>, CPU devices. Used by the Trainer when
/// <see cref="TrainingArguments.CudaGraphs"/> is set.</para>
/// </remarks>
internal sealed class CudaGraphTrainStep : IDisposable
{
    // The batch tensors a step reads: name, getter, and a copy of an input with the slot replaced.
    private static readonly (string Name, Func<ModelInput, Tensor?> Get, Func<ModelInput, Tensor?, ModelInput> With)[] Slots =
    [
        ("input_ids", i => i.InputIds, (i, t) => i with { InputIds = t }),
        ("attention_mask", i => i.AttentionMask, (i, t) => i with { AttentionMask = t }),
        ("token_type_ids", i => i.TokenTypeIds, (i, t) => i with { TokenTypeIds = t }),
        ("position_ids", i => i.PositionIds, (i, t) => i with { PositionIds = t }),
        ("labels", i => i.Labels, (i, t) => i with { Labels = t }),
        ("inputs_embeds", i => i.InputsEmbeds, (i, t) => i with { InputsEmbeds = t }),
        ("start_positions", i => i.StartPositions, (i, t) => i with { StartPositions = t }),
        ("end_positions", i => i.EndPositions, (i, t) => i with { EndPositions = t }),
    ];

    private readonly nn.Module<ModelInput, ModelOutput> _model;
    private readonly AdamW _optimizer;
    private readonly double _maxGradNorm;
    private readonly bool _useGraphs;
    private readonly Action? _gradientsToMasters, _mastersToModel;
    private readonly List<IReadOnlyList<Tensor>> _clipRuns;  // in the optimizer's flat runs: its step views the clipped buffers
    private readonly ITrainingHooks? _hooks;
    private CudaGraph? _graph;
    private ModelInput? _static;
    private Tensor? _graphLoss, _graphNorm;  // the captured body's outputs: each replay overwrites them
    private Tensor? _eagerLoss, _eagerNorm;  // the last eager body's outputs
    private readonly HashSet<string> _eagerReasons = new(StringComparer.Ordinal);

    /// <param name="model">The model in train mode; its forward returns a loss.</param>
    /// <param name="optimizer">AdamW over the trainable parameters (each listed once).</param>
    /// <param name="clipParameters">The parameters whose gradients are clipped (the optimizer's).</param>
    /// <param name="maxGradNorm">torch's <c>clip_grad_norm_</c> max norm; ≤ 0: the norm is computed, nothing clipped.</param>
    /// <param name="useGraphs">False: the same body always runs eagerly (CPU tests, the equality check's control).</param>
    /// <param name="gradientsToMasters">Mixed precision: moves the model's gradients onto fp32 masters (capturable).</param>
    /// <param name="mastersToModel">Mixed precision: copies the masters into the model (capturable).</param>
    public CudaGraphTrainStep(nn.Module<ModelInput, ModelOutput> model, AdamW optimizer, IReadOnlyList<Tensor> clipParameters, double maxGradNorm,
        bool useGraphs = true, Action? gradientsToMasters = null, Action? mastersToModel = null)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _optimizer = optimizer ?? throw new ArgumentNullException(nameof(optimizer));
        _clipRuns = GradClip.RunsOf(optimizer, clipParameters ?? throw new ArgumentNullException(nameof(clipParameters)));
        (_maxGradNorm, _useGraphs, _gradientsToMasters, _mastersToModel) = (maxGradNorm, useGraphs, gradientsToMasters, mastersToModel);
        _hooks = model as ITrainingHooks;
        if (useGraphs && CudaGraph.Unavailable is { } why) throw new NotSupportedException($"CUDA-graph training steps: {why}");
    }

    /// <summary>Null when CUDA graphs can be captured in this process; otherwise why not.</summary>
    public static string? Unavailable => CudaGraph.Unavailable;

    /// <summary>True once the step was captured.</summary>
    public bool Captured => _graph is not null;

    /// <summary>Steps that replayed the graph.</summary>
    public int Replays { get; private set; }

    /// <summary>Steps that ran the body eagerly (the warm-up, batches of other shapes, or all with graphs off).</summary>
    public int EagerSteps { get; private set; }

    /// <summary>Called once per distinct reason a step ran eagerly after the capture (a batch of other shapes).</summary>
    public Action<string>? OnEagerReason { get; set; }

    /// <summary>
    /// One training step on <paramref name="input"/> (on the model's CUDA device; not kept) with the current
    /// <see cref="ParamGroup.Lr"/> of the optimizer's groups. Returns the loss and the pre-clip gradient norm as
    /// 0-d device tensors owned by this object, valid until the next call (reading them synchronizes).
    /// </summary>
    public (Tensor Loss, Tensor GradNorm) Run(ModelInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.PastKeyValues is not null || input.UseCache)
            throw new ArgumentException("A training step takes no KV cache (ModelInput.PastKeyValues / UseCache)", nameof(input));
        if (_optimizer.PrepareGraphStep() && _graph is not null) ReleaseGraph();   // parameters re-pointed: capture again
        if (!_useGraphs)
        {
            RunEager(input);
        }
        else if (_graph is null)
        {
            if (input.InputIds is { } ids && ids.device.type != DeviceType.CUDA)
                throw new ArgumentException($"CUDA-graph training steps need CUDA inputs; input_ids are on {ids.device}", nameof(input));
            Capture(input);
        }
        else if (Mismatch(input) is { } why)
        {
            if (_eagerReasons.Add(why)) OnEagerReason?.Invoke(why);
            RunEager(input);
        }
        else
        {
            using (no_grad())
                foreach (var slot in Slots)
                    if (slot.Get(input) is { } t) slot.Get(_static!)!.copy_(t);
            _graph.Replay();
            Replays++;
            _optimizer.FinishGraphStep();
            return (_graphLoss!, _graphNorm!);
        }
        _optimizer.FinishGraphStep();
        return (_eagerLoss!, _eagerNorm!);
    }

    // Captures on the first call: the input copied into tensors the graph owns, one eager warm-up step on them (this
    // step's real update; its outputs are this step's), then the same body captured (its kernels do not run).
    private void Capture(ModelInput input)
    {
        _static = input;
        using (no_grad())
            foreach (var slot in Slots)
                if (slot.Get(input) is { } t) _static = slot.With(_static, t.clone().DetachFromDisposeScope());
        var device = (_static.InputIds ?? _static.InputsEmbeds ?? _static.Labels)?.device
            ?? throw new ArgumentException("The batch has neither input_ids, inputs_embeds nor labels", nameof(input));
        (Tensor Loss, Tensor Norm)? warm = null, captured = null;
        _graph = CudaGraph.Capture(device, () =>
        {
            if (warm is null) warm = Body(_static);     // the warm-up: this step's real update
            else captured = Body(_static);              // under capture: nothing runs, the kernels are recorded
        }, warmups: 1);
        // this step's results are the warm-up's (returned as an eager step's); the captured outputs belong to the graph
        // and are overwritten by each replay
        KeepEager(warm!.Value);
        (_graphLoss, _graphNorm) = captured!.Value;
        EagerSteps++;
    }

    private void KeepEager((Tensor Loss, Tensor Norm) outputs)
    {
        _eagerLoss?.Dispose();
        _eagerNorm?.Dispose();
        (_eagerLoss, _eagerNorm) = outputs;
    }

    private void RunEager(ModelInput input)
    {
        KeepEager(Body(input));
        EagerSteps++;
    }

    // The step itself: capturable (no host read, no host-to-device copy, every allocation from the caching
    // allocator, nothing allocated before it freed inside it). Returns the loss and the pre-clip norm, detached.
    private (Tensor Loss, Tensor Norm) Body(ModelInput input)
    {
        _optimizer.ZeroGrad();                                   // set_to_none: the backward allocates fresh gradients
        using var noHostReads = HostReads.Forbid();              // the same kernels eagerly as captured (a given mask always masks)
        using var scope = NewDisposeScope();
        var output = _model.forward(input);
        var loss = output.Loss ?? throw new InvalidOperationException($"{_model.GetType().Name}.forward returned no loss; the batch needs labels");
        StepOutputs.DropAllButLoss(output);
        if (_hooks?.LossTerm() is { } term) loss = loss.add(term, HeldScalars.One);
        loss.backward();
        _gradientsToMasters?.Invoke();
        var norm = GradClip.NormAndClip(_clipRuns, _maxGradNorm);
        _optimizer.StepGraph();
        _mastersToModel?.Invoke();
        return (loss.detach().DetachFromDisposeScope(), norm.DetachFromDisposeScope());
    }

    // Why input cannot be copied into the captured tensors (another shape, dtype or set of inputs), or null.
    private string? Mismatch(ModelInput input)
    {
        foreach (var (name, get, _) in Slots)
        {
            var (a, b) = (get(input), get(_static!));
            if (a is null && b is null) continue;
            if (a is null || b is null) return $"{name} {(a is null ? "missing" : "present")} (captured {(b is null ? "without" : "with")} it)";
            if (a.dtype != b.dtype || !a.shape.SequenceEqual(b.shape))
                return $"{name} is {a.dtype} [{string.Join(", ", a.shape)}], captured {b.dtype} [{string.Join(", ", b.shape)}]";
        }
        return null;
    }

    /// <summary>Releases the graph, its pool and the captured tensors.</summary>
    public void Dispose()
    {
        ReleaseGraph();
        KeepEager((null!, null!));
    }

    private void ReleaseGraph()
    {
        _graph?.Dispose();
        _graph = null;
        _graphLoss?.Dispose();
        _graphNorm?.Dispose();
        (_graphLoss, _graphNorm) = (null, null);
        if (_static is not null)
            foreach (var slot in Slots)
                slot.Get(_static)?.Dispose();
        _static = null;
    }
}
