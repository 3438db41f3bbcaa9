using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// AdamW with decoupled weight decay, operation for operation as torch 2.11's single-tensor
/// <c>torch.optim.AdamW</c> (what it runs on CPU): <c>p *= 1 - lr·wd</c>; <c>m.lerp_(g, 1 - β1)</c>;
/// <c>v = v·β2 + (1 - β2)·g²</c>; <c>p -= lr / (1 - β1^t) · m / (sqrt(v) / sqrt(1 - β2^t) + ε)</c>. State per
/// parameter: <c>step</c> (float32 scalar), <c>exp_avg</c>, <c>exp_avg_sq</c>, as torch names them.
/// </summary>
public sealed class AdamW : TrainerOptimizer
{
    private readonly double _beta1, _beta2, _eps;

    // 1 − β1 as a 0-d tensor per (dtype, device): TorchSharp's lerp_ takes a tensor weight only, and building it
    // per parameter per step costs an allocation and, on CUDA, a host-to-device copy each time.
    private readonly Dictionary<(ScalarType, string), Tensor> _lerpWeights = new();

    /// <summary>AdamW over <paramref name="groups"/> (HF <c>adam_beta1/2</c>, <c>adam_epsilon</c>).</summary>
    public AdamW(IReadOnlyList<ParamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8) : base(groups)
    {
        (_beta1, _beta2, _eps) = (beta1, beta2, eps);
    }

    /// <inheritdoc />
    public override string Name => "adamw_torch";

    /// <summary>
    /// Elements per slice on CPU: a large tensor is updated slice by slice (all 8 ops on one slice, then the next),
    /// so the step's temporary (the denominator) is one slice, reused from the heap, instead of a fresh
    /// parameter-sized allocation (page faults), and a slice's operands stay in the last-level cache across the ops.
    /// 2^20 keeps the number of intra-op parallel regions near torch's per-tensor loop (much smaller slices made the
    /// step many times slower on an oversubscribed machine: every op is an OpenMP barrier). Every element sees the
    /// same ops with the same scalars as in torch's per-tensor loop, so the result is bit-identical (tested). Other
    /// devices update whole tensors.
    /// </summary>
    internal long CpuSliceElements { get; set; } = 1 << 20;

    /// <inheritdoc />
    protected override void Update(Tensor param, Tensor grad, ParamGroup group, Dictionary<string, Tensor> state)
    {
        if (!state.TryGetValue("step", out var stepT))
        {
            state["step"] = stepT = Keep(zeros([], ScalarType.Float32));
            state["exp_avg"] = Keep(zeros_like(param));
            state["exp_avg_sq"] = Keep(zeros_like(param));
        }
        var expAvg = state["exp_avg"];
        var expAvgSq = state["exp_avg_sq"];
        stepT.add_(1);
        double step = stepT.item<float>();             // the step tensor lives on the CPU (as torch's): no device sync
        double lr = group.Lr;
        double bc1 = 1 - Math.Pow(_beta1, step);
        double bc2 = 1 - Math.Pow(_beta2, step);
        var s = new Scalars(1 - lr * group.WeightDecay, group.WeightDecay != 0, LerpWeight(param),
            _beta2, 1 - _beta2, Math.Sqrt(bc2), _eps, -(lr / bc1));
        long n = param.numel();
        long slice = param.device_type == DeviceType.CPU ? Math.Max(1, CpuSliceElements) : long.MaxValue;
        bool sliceable = n > slice && param.is_contiguous() && grad.is_contiguous() && expAvg.is_contiguous() && expAvgSq.is_contiguous();
        if (!sliceable)
        {
            Apply(param, grad, expAvg, expAvgSq, s);
            return;
        }
        using var flat = NewDisposeScope();
        var (p, g, m, v) = (param.view(-1), grad.view(-1), expAvg.view(-1), expAvgSq.view(-1));   // [N]
        for (long off = 0; off < n; off += slice)
        {
            using var inner = NewDisposeScope();
            long len = Math.Min(slice, n - off);
            Apply(p.narrow(0, off, len), g.narrow(0, off, len), m.narrow(0, off, len), v.narrow(0, off, len), s);
        }
    }

    private readonly record struct Scalars(double Decay, bool HasDecay, Tensor LerpWeight, double Beta2, double OneMinusBeta2,
        double Bc2Sqrt, double Eps, double NegStepSize);

    // torch 2.11 _single_tensor_adam (decoupled weight decay), op for op on one tensor or one slice of it.
    private static void Apply(Tensor p, Tensor g, Tensor m, Tensor v, in Scalars s)
    {
        if (s.HasDecay) p.mul_(s.Decay);
        m.lerp_(g, s.LerpWeight);
        v.mul_(s.Beta2).addcmul_(g, g, s.OneMinusBeta2);
        using var denom = v.sqrt();
        denom.div_(s.Bc2Sqrt).add_(s.Eps);
        p.addcdiv_(m, denom, s.NegStepSize);
    }

    private Tensor LerpWeight(Tensor param)
    {
        var key = (param.dtype, param.device.ToString());
        if (!_lerpWeights.TryGetValue(key, out var w)) _lerpWeights[key] = w = Keep(tensor(1 - _beta1, param.dtype, param.device));
        return w;
    }

    /// <inheritdoc />
    protected override void ReleaseCaches()
    {
        foreach (var w in _lerpWeights.Values) w.Dispose();
        _lerpWeights.Clear();
    }

    /// <inheritdoc />
    protected override JsonObject Settings() => new() { ["betas"] = new JsonArray(_beta1, _beta2), ["eps"] = _eps };
}
