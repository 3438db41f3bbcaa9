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

    private readonly bool _multiTensor;

    /// <param name="parameters">The bucket's parameters (one group, one dtype and device, each listed once when <paramref name="multiTensor"/>).</param>
    /// <param name="indices">Their state indices.</param>
    /// <param name="multiTensor">False: <see cref="TryStep"/> always declines (the per-parameter form).</param>
    public AdamWFlatBucket(IReadOnlyList<Parameter> parameters, IReadOnlyList<int> indices, bool multiTensor)
    {
        _params = parameters.ToArray();
        _indices = indices.ToArray();
        _multiTensor = multiTensor;
        (_offsets, _total) = FlatTensors.Layout(_params);
    }

    /// <summary>The per-parameter form over this bucket (<paramref name="stepParameter"/> = the optimizer's loop body).</summary>
    public void StepEach(Action<ParamGroup, Tensor, int> stepParameter, ParamGroup group)
    {
        for (int i = 0; i < _params.Length; i++) stepParameter(group, _params[i], _indices[i]);
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

    // The parameters as views of one buffer: built on the first step, rebuilt if a parameter was re-pointed since.
    private void EnsureFlatParams()
    {
        if (_flatParams is not null && _params.Select(p => TensorMemory.DataPointer(p)).SequenceEqual(_paramPtrs)) return;
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
    }

    // The state as views of flat buffers: built on the first step, rebuilt when the state dictionaries no longer hold
    // this bucket's views (optimizer Load); existing per-parameter state is copied in, missing state starts at zero.
    private void EnsureFlatState(Func<int, Dictionary<string, Tensor>> stateOf)
    {
        bool current = _steps is not null;
        for (int i = 0; current && i < _params.Length; i++)
        {
            var s = stateOf(_indices[i]);
            current = s.TryGetValue("step", out var st) && ReferenceEquals(st, _stepViews[i])
                && ReferenceEquals(s["exp_avg"], _avgViews[i]) && ReferenceEquals(s["exp_avg_sq"], _sqViews[i]);
        }
        if (current) return;
        var first = _params[0];
        var steps = zeros([_params.Length], ScalarType.Float32).DetachFromDisposeScope();
        var avg = zeros([_total], first.dtype, first.device).DetachFromDisposeScope();
        var sq = zeros([_total], first.dtype, first.device).DetachFromDisposeScope();
        var (stepViews, avgViews, sqViews) = (new Tensor[_params.Length], new Tensor[_params.Length], new Tensor[_params.Length]);
        for (int i = 0; i < _params.Length; i++)
        {
            var s = stateOf(_indices[i]);
            stepViews[i] = steps.select(0, i).DetachFromDisposeScope();
            avgViews[i] = avg.narrow(0, _offsets[i], _params[i].numel()).view(_params[i].shape).DetachFromDisposeScope();
            sqViews[i] = sq.narrow(0, _offsets[i], _params[i].numel()).view(_params[i].shape).DetachFromDisposeScope();
            if (s.TryGetValue("step", out var oldStep))
            {
                stepViews[i].copy_(oldStep);
                avgViews[i].copy_(s["exp_avg"]);
                sqViews[i].copy_(s["exp_avg_sq"]);
                foreach (var t in s.Values) t.Dispose();
            }
            s["step"] = stepViews[i];
            s["exp_avg"] = avgViews[i];
            s["exp_avg_sq"] = sqViews[i];
        }
        ReleaseState();
        (_steps, _expAvg, _expAvgSq) = (steps, avg, sq);
        (_stepViews, _avgViews, _sqViews) = (stepViews, avgViews, sqViews);
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
