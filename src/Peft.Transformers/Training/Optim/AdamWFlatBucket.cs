using Peft.Core.Distributed.Nccl;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Optimization;

/// <summary>
/// The multi-tensor form of <see cref="AdamW"/> for the parameters of one group that share a dtype and device
/// (torch's <c>_multi_tensor_adamw</c> / fused AdamW, which TorchSharp 0.107 does not expose): the parameters are
/// re-pointed (<c>set_</c>) at views of one flat buffer, <c>exp_avg</c> / <c>exp_avg_sq</c> are views of two more
/// and the per-parameter <c>step</c> counters are the elements of one float32 CPU tensor, so one step is a fixed
/// handful of kernels over the bucket instead of ~8 per parameter. The state dictionary still holds one
/// <c>step</c> / <c>exp_avg</c> / <c>exp_avg_sq</c> tensor per parameter (views), so checkpoints keep torch's
/// per-parameter layout. Elementwise math is the per-tensor loop's, element for element (bit-identical on CUDA,
/// where an elementwise kernel's result does not depend on the element's position).
/// </summary>
/// <remarks>
/// Re-pointing a parameter changes its storage: views of it taken before the first step (none in this library's
/// models; tied weights share the <see cref="Parameter"/> object) no longer alias it afterwards.
/// </remarks>
internal sealed class AdamWFlatBucket : IDisposable
{
    private readonly Parameter[] _params;
    private readonly int[] _indices;                // state indices (position over all groups)
    private readonly long[] _offsets;
    private readonly long _total;
    private Tensor? _flatParams, _expAvg, _expAvgSq, _steps;  // [total] ×3 on the device, [n] float32 on the CPU
    private nint[] _paramPtrs = [];
    private Tensor[] _stepViews = [], _avgViews = [], _sqViews = [];

    private readonly bool _multiTensor, _flatState;

    /// <param name="parameters">The bucket's parameters (one group, one dtype and device).</param>
    /// <param name="indices">Their state indices.</param>
    /// <param name="flatState">True when each parameter is listed once: the state lives in flat buffers (both forms).
    /// False: per-parameter state tensors (the optimizer's own) and no multi-tensor step.</param>
    /// <param name="multiTensor">False: <see cref="TryStep"/> always declines (the per-parameter form).</param>
    public AdamWFlatBucket(IReadOnlyList<Parameter> parameters, IReadOnlyList<int> indices, bool flatState, bool multiTensor)
    {
        _params = parameters.ToArray();
        _indices = indices.ToArray();
        _flatState = flatState;
        _multiTensor = flatState && multiTensor;
        (_offsets, _total) = FlatTensors.Layout(_params);
    }

    /// <summary>
    /// The per-parameter form over this bucket (<paramref name="stepParameter"/> = the optimizer's loop body). With
    /// flat state, a parameter's <c>exp_avg</c> / <c>exp_avg_sq</c> / <c>step</c> are bound to views of the bucket's
    /// buffers the first time it has a gradient (torch creates state lazily too), so the state is one large allocation
    /// per buffer instead of two per parameter.
    /// </summary>
    public void StepEach(Action<ParamGroup, Tensor, int> stepParameter, ParamGroup group, Func<int, Dictionary<string, Tensor>> stateOf)
    {
        for (int i = 0; i < _params.Length; i++)
        {
            if (_flatState && HasGrad(_params[i])) BindState(i, stateOf(_indices[i]));
            stepParameter(group, _params[i], _indices[i]);
        }
    }

    // TorchSharp's grad getter returns a new handle each call: disposed here, not left to a finalizer.
    private static bool HasGrad(Parameter p)
    {
        using var g = p.grad;
        return g is not null;
    }

    /// <summary>
    /// One AdamW step of every parameter of the bucket on the flat buffers, when all have a gradient of their dtype
    /// and equal step counts; returns false (nothing changed) otherwise, and the caller runs the per-parameter loop.
    /// </summary>
    public bool TryStep(Func<int, Dictionary<string, Tensor>> stateOf, AdamW optimizer, double lr, double weightDecay)
    {
        if (!_multiTensor) return false;
        using var scope = NewDisposeScope();
        var grads = new Tensor[_params.Length];
        for (int i = 0; i < _params.Length; i++)
        {
            var g = _params[i].grad;
            if (g is null || g.dtype != _params[i].dtype) return false;
            grads[i] = g;
        }
        EnsureFlatParams();
        EnsureFlatState(stateOf);
        float[] counts = _steps!.data<float>().ToArray();   // a CPU tensor: no device sync
        for (int i = 1; i < counts.Length; i++)
            if (counts[i] != counts[0]) return false;
        var flatGrad = FlatTensors.ViewOrCat(grads);       // [total]
        _steps.add_(HeldScalars.Of(1), HeldScalars.One);
        optimizer.Apply(_flatParams!, flatGrad, _expAvg!, _expAvgSq!, counts[0] + 1, lr, weightDecay);
        return true;
    }

    /// <summary>
    /// Makes the multi-tensor form's buffers now (the parameters re-pointed at the flat buffer, the state buffers
    /// allocated, no state bound): see <see cref="AdamW"/>'s constructor. Nothing for the per-parameter form.
    /// </summary>
    public void Reserve()
    {
        if (!_multiTensor) return;
        EnsureFlatParams();
        AllocateState();
    }

    /// <summary>The bucket's parameters, in flat-buffer order.</summary>
    public IReadOnlyList<Tensor> Parameters => _params;

    /// <summary>The bucket's first parameter (its dtype and device are the bucket's).</summary>
    public Parameter First => _params[0];

    /// <summary>
    /// The graph form's preparation, outside any capture: the parameters as views of the flat buffer and every
    /// parameter's state bound to the flat state (allocations and copies happen here, never under capture). Returns
    /// the bucket's step count (all parameters share it; throws when a loaded state gave them different counts);
    /// <paramref name="moved"/> is true when the flat parameter buffer was (re)built, i.e. device addresses changed.
    /// </summary>
    public float PrepareGraph(Func<int, Dictionary<string, Tensor>> stateOf, out bool moved)
    {
        if (!_flatState) throw new NotSupportedException("CUDA-graph steps need every trainable parameter listed once in the optimizer's groups");
        moved = EnsureFlatParams();
        EnsureFlatState(stateOf);
        float[] counts = _steps!.data<float>().ToArray();   // CPU tensor: no device sync
        for (int i = 1; i < counts.Length; i++)
            if (counts[i] != counts[0])
                throw new NotSupportedException($"CUDA-graph steps need one step count per bucket; parameter {_indices[i]} has {counts[i]}, parameter {_indices[0]} {counts[0]}");
        return counts[0];
    }

    /// <summary>
    /// The graph form's kernels over the flat buffers (capturable: no host read, no allocation outside the caching
    /// allocator): every parameter must have a gradient of its dtype. <paramref name="factors"/> holds the step's
    /// varying values as 0-d device tensors (see <see cref="AdamW.StepGraph"/>).
    /// </summary>
    public void StepGraph(AdamW optimizer, AdamWGraphFactors factors, double weightDecay)
    {
        using var scope = NewDisposeScope();
        var grads = new Tensor[_params.Length];
        for (int i = 0; i < _params.Length; i++)
        {
            var g = _params[i].grad;
            if (g is null || g.dtype != _params[i].dtype)
                throw new InvalidOperationException($"CUDA-graph AdamW step: parameter {_indices[i]} ({string.Join("x", _params[i].shape)}) has "
                    + (g is null ? "no gradient (every trainable parameter must take part in the loss)" : $"a {g.dtype} gradient for {_params[i].dtype} values"));
            grads[i] = g;
        }
        var flatGrad = FlatTensors.ViewOrCat(grads);       // [total]
        optimizer.ApplyGraph(_flatParams!, flatGrad, _expAvg!, _expAvgSq!, factors, weightDecay);
    }

    /// <summary>Counts one graph-form step on the host (the CPU step counters checkpoints save).</summary>
    public void AdvanceSteps() => _steps!.add_(HeldScalars.Of(1), HeldScalars.One);

    // The parameters as views of one buffer: built on the first step, rebuilt if a parameter was re-pointed since.
    private bool EnsureFlatParams()
    {
        if (_flatParams is not null && _params.Select(p => TensorMemory.DataPointer(p)).SequenceEqual(_paramPtrs)) return false;
        var first = _params[0];
        var flat = empty([_total], first.dtype, first.device);
        for (int i = 0; i < _params.Length; i++)
        {
            var view = flat.narrow(0, _offsets[i], _params[i].numel()).view(_params[i].shape);
            view.copy_(_params[i]);
            _params[i].set_(view);                                      // no_grad (Step): allowed on a leaf
        }
        _flatParams?.Dispose();
        _flatParams = flat.DetachFromDisposeScope();
        _paramPtrs = _params.Select(p => TensorMemory.DataPointer(p)).ToArray();
        return true;
    }

    // Every parameter's state bound to views of the flat buffers (the multi-tensor step needs all of them).
    private void EnsureFlatState(Func<int, Dictionary<string, Tensor>> stateOf)
    {
        for (int i = 0; i < _params.Length; i++) BindState(i, stateOf(_indices[i]));
    }

    // The flat state buffers, allocated once per bucket on the first step: [total] ×2 on the device, [n] float32 on the
    // CPU (torch keeps step counts on the CPU). Allocated empty: a region is zeroed or filled when its parameter is
    // bound, so the pages of parameters that never get a gradient are never touched. One allocation of the bucket's
    // size (the parameters' total, hundreds of MB for a full fine-tune) is served by mmap, outside the malloc heap
    // where a step's activations come and go: per-parameter state of 2-10 MB tensors would land in the holes freed
    // activations leave on the first step and pin them for the rest of the run (bench/README.md, full_step trace).
    private void AllocateState()
    {
        if (_steps is not null) return;
        var first = _params[0];
        _steps = zeros([_params.Length], ScalarType.Float32).DetachFromDisposeScope();
        _expAvg = empty([_total], first.dtype, first.device).DetachFromDisposeScope();
        _expAvgSq = empty([_total], first.dtype, first.device).DetachFromDisposeScope();
        (_stepViews, _avgViews, _sqViews) = (new Tensor[_params.Length], new Tensor[_params.Length], new Tensor[_params.Length]);
    }

    // Parameter i's state as views of the flat buffers. Already bound: nothing. State of another origin (a Load, or the
    // per-parameter form before): copied into the views and disposed. No state yet: zeros, step 0. The views belong
    // to the optimizer's state dictionary from then on (it disposes them; the buffers stay with this bucket).
    private void BindState(int i, Dictionary<string, Tensor> s)
    {
        AllocateState();
        if (s.TryGetValue("step", out var st) && ReferenceEquals(st, _stepViews[i])
            && ReferenceEquals(s["exp_avg"], _avgViews[i]) && ReferenceEquals(s["exp_avg_sq"], _sqViews[i])) return;
        var stepView = _steps!.select(0, i).DetachFromDisposeScope();                                        // []
        var avgView = _expAvg!.narrow(0, _offsets[i], _params[i].numel()).view(_params[i].shape).DetachFromDisposeScope();
        var sqView = _expAvgSq!.narrow(0, _offsets[i], _params[i].numel()).view(_params[i].shape).DetachFromDisposeScope();
        if (st is not null)
        {
            stepView.copy_(st);
            avgView.copy_(s["exp_avg"]);
            sqView.copy_(s["exp_avg_sq"]);
            foreach (var t in s.Values) t.Dispose();
        }
        else
        {
            stepView.zero_();
            avgView.zero_();
            sqView.zero_();
        }
        s["step"] = _stepViews[i] = stepView;
        s["exp_avg"] = _avgViews[i] = avgView;
        s["exp_avg_sq"] = _sqViews[i] = sqView;
    }

    // The bucket's own handles; the views in the state dictionaries belong to the optimizer's state.
    private void ReleaseState()
    {
        _steps?.Dispose();
        _expAvg?.Dispose();
        _expAvgSq?.Dispose();
    }

    public void Dispose()
    {
        ReleaseState();
        _flatParams?.Dispose();
    }
}
