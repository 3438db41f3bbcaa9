using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;
using Peft.Core.Torch.Cuda;

namespace Peft.Transformers.Optimization;

/// <summary>
/// AdamW with decoupled weight decay, operation for operation as torch 2.11's single-tensor
/// <c>torch.optim.AdamW</c> (what it runs on CPU): <c>p *= 1 - lr·wd</c>; <c>m.lerp_(g, 1 - β1)</c>;
/// <c>v = v·β2 + (1 - β2)·g²</c>; <c>p -= lr / (1 - β1^t) · m / (sqrt(v) / sqrt(1 - β2^t) + ε)</c>. State per
/// parameter: <c>step</c> (float32 scalar), <c>exp_avg</c>, <c>exp_avg_sq</c>, as torch names them.
/// </summary>
/// <remarks>
/// Two forms, as torch's <c>foreach</c> argument: per parameter (~8 kernels each; what torch runs on the CPU) and
/// multi-tensor (<see cref="AdamWFlatBucket"/>: the parameters of a group that share dtype and device live in one flat
/// buffer and a step is ~9 kernels per group, what torch's foreach/fused paths do on CUDA). Both apply the same
/// elementwise ops in the same order. The multi-tensor form re-points the parameters at views of the flat buffer
/// on the first step. In both forms <c>exp_avg</c> / <c>exp_avg_sq</c> are views of one buffer per group, dtype and
/// device (bound when a parameter first has a gradient): one large allocation, which the C heap serves by mmap, instead
/// of two 2–10 MB tensors per parameter placed among a step's freed activations (bench/README.md, rssfix).
/// <para>On CUDA the multi-tensor buckets hold at most 128 MiB each (<c>PEFT_ADAMW_BUCKET_MB</c>; a larger parameter
/// alone), and their flat parameter and state buffers are made when the optimizer is constructed, not at the first
/// step (<c>PEFT_ADAMW_RESERVE=0</c> restores the first-step allocation): both keep the caching allocator from
/// splitting the blocks the first forward freed (bench/README.md, "GPU, 2026-12-02 09:45").</para>
/// </remarks>
public sealed class AdamW : TrainerOptimizer
{
    private readonly double _beta1, _beta2, _eps;

    // 1 − β1 as a 0-d tensor per (dtype, device): TorchSharp's lerp_ takes a tensor weight only, and building it
    // per parameter per step costs an allocation and, on CUDA, a host-to-device copy each time.
    private readonly Dictionary<(ScalarType, string), Tensor> _lerpWeights = new();
    private readonly bool? _foreach;
    private readonly Dictionary<int, AdamWFlatBucket[]> _buckets = new();  // by group's first state index
    private readonly Dictionary<AdamWFlatBucket, AdamWGraphFactors> _graphFactors = new();

    /// <summary>AdamW over <paramref name="groups"/> (HF <c>adam_beta1/2</c>, <c>adam_epsilon</c>).</summary>
    /// <param name="groups">Parameter groups; parameters are not owned.</param>
    /// <param name="beta1">β1 (HF <c>adam_beta1</c>).</param>
    /// <param name="beta2">β2 (HF <c>adam_beta2</c>).</param>
    /// <param name="eps">ε (HF <c>adam_epsilon</c>).</param>
    /// <param name="foreach">torch's <c>foreach</c>: true = the multi-tensor form, false = one parameter at a time,
    /// null (default) = multi-tensor for CUDA parameters and per parameter on the CPU, as torch chooses.</param>
    public AdamW(IReadOnlyList<ParamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, bool? @foreach = null)
        : this(groups, beta1, beta2, eps, @foreach, FlatTensors.BucketCapBytes)
    {
    }

    /// <summary>The public constructor with the multi-tensor bucket cap given (tests).</summary>
    internal AdamW(IReadOnlyList<ParamGroup> groups, double beta1, double beta2, double eps, bool? @foreach, long bucketCapBytes) : base(groups)
    {
        (_beta1, _beta2, _eps, _foreach, _bucketCapBytes) = (beta1, beta2, eps, @foreach, bucketCapBytes);
        if (Environment.GetEnvironmentVariable("PEFT_ADAMW_RESERVE") != "0") ReserveFlatBuffers();
    }

    private readonly long _bucketCapBytes;  // FlatTensors.BucketCapBytes: at most 128 MiB per multi-tensor bucket

    // The multi-tensor form's flat parameter and state buffers of CUDA parameters, made now, while the caching allocator
    // holds only the model: made at the first step they would be carved out of the blocks the first forward and
    // backward freed, and the second forward would find those blocks split and reserve new segments (OPT-125m full
    // fine-tuning, bf16, 8 × 512: +1.5 GiB reserved in the second forward; Llama-1B shape +8.2 GiB at the first step;
    // bench/README.md). The state stays unbound (zeroed per parameter when it first has a gradient, as before).
    private void ReserveFlatBuffers()
    {
        using var _ = no_grad();
        foreach (var b in GroupBuckets().SelectMany(x => x.Buckets))
            if (b.First.device_type == DeviceType.CUDA) b.Reserve();
    }

    /// <inheritdoc />
    public override string Name => "adamw_torch";

    /// <inheritdoc />
    protected override void StepGroup(ParamGroup group, int firstIndex)
    {
        ArgumentNullException.ThrowIfNull(group);
        foreach (var b in BucketsOf(group, firstIndex))
            if (!b.TryStep(StateOf, this, group.Lr, group.WeightDecay)) b.StepEach(StepParameter, group, StateOf);
    }

    // The group's parameters by (dtype, device) in order; each bucket steps on flat buffers or one parameter at a time.
    // Only the multi-tensor form is cut at the cap: the per-parameter form's flat state stays one allocation per group,
    // dtype and device (on the CPU one mmap outside the malloc heap, bench/README.md rssfix).
    private AdamWFlatBucket[] Bucket(ParamGroup group, int firstIndex)
    {
        var distinct = group.Params.Distinct().Count() == group.Params.Count; // a parameter listed twice cannot be one flat view
        return group.Params.Select((p, i) => (p, i))
            .GroupBy(x => (x.p.dtype, x.p.device.ToString()))
            .SelectMany(g => MultiTensor(g.First().p) ? FlatTensors.Runs(g.ToList(), x => x.p.numel() * x.p.ElementSize, _bucketCapBytes) : [g.ToList()])
            .Select(g => new AdamWFlatBucket(g.Select(x => x.p).ToList(), g.Select(x => firstIndex + x.i).ToList(),
                flatState: distinct, multiTensor: MultiTensor(g[0].p)))
            .ToArray();
    }

    /// <summary>
    /// The parameters of each bucket in step order: gradients flattened in these runs (<see cref="GradClip"/>) are
    /// read as views at the multi-tensor step, not copied again.
    /// </summary>
    internal override IEnumerable<IReadOnlyList<Tensor>> FlatRuns() => GroupBuckets().SelectMany(x => x.Buckets).Select(b => b.Parameters);

    // Each group with its buckets (made on first use), in group order.
    private IEnumerable<(ParamGroup Group, AdamWFlatBucket[] Buckets)> GroupBuckets()
    {
        int index = 0;
        foreach (var g in Groups)
        {
            yield return (g, BucketsOf(g, index));
            index += g.Params.Count;
        }
    }

    private AdamWFlatBucket[] BucketsOf(ParamGroup group, int firstIndex) =>
        _buckets.TryGetValue(firstIndex, out var buckets) ? buckets : _buckets[firstIndex] = Bucket(group, firstIndex);

    private bool MultiTensor(Parameter p) => _foreach ?? p.device.type == DeviceType.CUDA;

    /// <inheritdoc />
    protected override void Update(Tensor param, Tensor grad, ParamGroup group, Dictionary<string, Tensor> state)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(state);
        if (!state.TryGetValue("step", out var stepT))
        {
            state["step"] = stepT = Keep(zeros([], ScalarType.Float32));
            state["exp_avg"] = Keep(zeros_like(param));
            state["exp_avg_sq"] = Keep(zeros_like(param));
        }
        stepT.add_(HeldScalars.Of(1), HeldScalars.One);
        double step = stepT.item<float>();             // the step tensor lives on the CPU (as torch's): no device sync
        Apply(param, grad, state["exp_avg"], state["exp_avg_sq"], step, group.Lr, group.WeightDecay);
    }

    /// <summary>
    /// The elementwise update of one parameter, or of a flat buffer of several with the same step count:
    /// torch's <c>_single_tensor_adam</c> (decoupled decay) op for op, after the step count was incremented.
    /// </summary>
    internal void Apply(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, double step, double lr, double weightDecay)
    {
        double bc1 = 1 - Math.Pow(_beta1, step);
        double bc2 = 1 - Math.Pow(_beta2, step);
        double stepSize = lr / bc1;
        double bc2Sqrt = Math.Sqrt(bc2);
        var update = UpdateFactor.Of(-stepSize, param, "-lr / (1 - beta1^step)", lr);   // checked before anything changes
        if (UsesFusedKernel(param, grad, expAvg, expAvgSq))
        {
            FusedKernels.AdamWStep(param, grad, expAvg, expAvgSq, FusedScalars(param.dtype, 1 - lr * weightDecay, -stepSize, bc2Sqrt, weightDecay));
            return;
        }
        if (weightDecay != 0) param.mul_(HeldScalars.Of(1 - lr * weightDecay));   // HeldScalars: no finalizer race (docs/ARCHITECTURE.md)
        UpdateMoments(param, grad, expAvg, expAvgSq);
        using var denom = expAvgSq.sqrt();             // freed here, before the next parameter allocates its own
        denom.div_(HeldScalars.Of(bc2Sqrt)).add_(HeldScalars.Of(_eps), HeldScalars.One);
        param.addcdiv_(expAvg, denom, update);
    }

    /// <summary>
    /// The graph form (CUDA-graph training steps, <see cref="CudaGraphTrainStep"/>), outside any capture and before
    /// every step: buckets, flat buffers and the lerp weight made, and each bucket's <see cref="AdamWGraphFactors"/>
    /// filled for its next step count and its group's lr (a few fill kernels, no host sync). Every trainable
    /// parameter must be listed once. The arithmetic is torch's <c>capturable=True</c> AdamW (the step-dependent
    /// factors are device values, folded into the denominator), not the eager form's host scalars: equal up to
    /// rounding, not bit for bit; on half-precision parameters the factors are rounded to the parameters' dtype.
    /// </summary>
    /// <returns>True when a flat parameter buffer was (re)built (first step, or parameters re-pointed since): a
    /// graph captured before reads other addresses and must be captured again.</returns>
    internal bool PrepareGraphStep()
    {
        using var _ = no_grad();
        bool movedAny = false;
        foreach (var (g, buckets) in GroupBuckets())
        {
            foreach (var b in buckets)
            {
                double step = b.PrepareGraph(StateOf, out bool moved) + 1.0;
                movedAny |= moved;
                LerpWeight(b.First);
                double stepSize = g.Lr / (1 - Math.Pow(_beta1, step));
                UpdateFactor.Of(-stepSize, b.First, "-lr / (1 - beta1^step)", g.Lr);   // throws for an lr the dtype cannot hold
                if (!_graphFactors.TryGetValue(b, out var f)) _graphFactors[b] = f = new AdamWGraphFactors(b.First.dtype, b.First.device);
                f.FillFused(decay: 1 - g.Lr * g.WeightDecay, negStepSize: -stepSize, bc2Sqrt: Math.Sqrt(1 - Math.Pow(_beta2, step)));
                if (stepSize == 0)
                    // lr = 0 (a warm-up's first step): torch's capturable formula divides by -lr, so elements with
                    // v = 0 would become 0/0 = NaN. Factors that make denom = -sqrt(v) - inf = -inf give m / denom = ±0:
                    // the parameters stay exactly as they are, as in the eager form's addcdiv_ with value -0.
                    f.Fill(decay: 1, bc2SqrtTimesNegStep: -1, epsOverNegStep: double.NegativeInfinity);
                else
                    f.Fill(decay: 1 - g.Lr * g.WeightDecay, bc2SqrtTimesNegStep: Math.Sqrt(1 - Math.Pow(_beta2, step)) * -stepSize, epsOverNegStep: _eps / -stepSize);
            }
        }
        return movedAny;
    }

    /// <summary>The graph form's kernels (capturable); <see cref="PrepareGraphStep"/> ran before.</summary>
    internal void StepGraph()
    {
        using var _ = no_grad();
        foreach (var (g, buckets) in GroupBuckets())
            foreach (var b in buckets) b.StepGraph(this, _graphFactors[b], g.WeightDecay);
    }

    /// <summary>After a graph-form step ran (replayed or eagerly): the host step counts advance by one.</summary>
    internal void FinishGraphStep()
    {
        foreach (var b in _buckets.Values.SelectMany(b => b)) b.AdvanceSteps();
    }

    /// <summary>
    /// torch's capturable AdamW update of one flat buffer: <c>p *= 1 - lr·wd</c>; <c>m.lerp_(g, 1 - β1)</c>;
    /// <c>v = v·β2 + (1 - β2)·g²</c>; <c>denom = sqrt(v) / (sqrt(bc2)·(-lr/bc1)) + ε / (-lr/bc1)</c>;
    /// <c>p += m / denom</c>. Every step-dependent value comes from <paramref name="f"/>.
    /// </summary>
    internal void ApplyGraph(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, AdamWGraphFactors f, double weightDecay)
    {
        if (UsesFusedKernel(param, grad, expAvg, expAvgSq))
        {
            // the eager chain's kernel, its step-dependent scalars read from device memory: bit-equal to the eager form
            FusedKernels.AdamWStep(param, grad, expAvg, expAvgSq, FusedScalars(param.dtype, 1, 0, 1, weightDecay), f.FusedScalars);
            return;
        }
        if (weightDecay != 0) param.mul_(f.Decay);
        UpdateMoments(param, grad, expAvg, expAvgSq);
        using var denom = expAvgSq.sqrt();
        denom.div_(f.Bc2SqrtTimesNegStep).add_(f.EpsOverNegStep, HeldScalars.One);
        param.addcdiv_(expAvg, denom, HeldScalars.One);
    }

    /// <summary>
    /// True when one step of these tensors runs as one fused CUDA kernel (<see cref="FusedKernels.AdamWStep"/>, the
    /// same eight ops with the same roundings): contiguous CUDA tensors of one dtype and size, the kernels available and
    /// not turned off (<c>PEFT_FUSED_KERNELS=-adamw</c>), lerp's weight 1 − β1 below 0.5 (the kernel's branch), and a
    /// 16-bit dtype: bfloat16 / float16 results are bit-equal to the eager chain (bench <c>fused_check</c>); on float32
    /// the fused parameter update differed by one ulp in ~0.7 % of the elements, so float32 keeps the eager chain.
    /// </summary>
    internal bool UsesFusedKernel(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq) =>
        param.device_type == DeviceType.CUDA && (param.dtype is ScalarType.BFloat16 or ScalarType.Float16)
        && FusedKernels.EnabledFor("adamw") && Math.Abs(LerpWeightValue(param.dtype)) < 0.5f
        && param.is_contiguous() && grad.is_contiguous() && expAvg.is_contiguous() && expAvgSq.is_contiguous()
        && grad.numel() == param.numel() && expAvg.numel() == param.numel() && expAvgSq.numel() == param.numel()
        && FusedKernels.Applies(param, grad, expAvg, expAvgSq);

    // The fused kernel's scalars as the eager ops' kernels see them: (float) of each double, 1/√bc2 divided in float
    // (torch's div_ by a CPU scalar multiplies by the reciprocal computed in float).
    private AdamWScalars FusedScalars(ScalarType dtype, double decay, double negStepSize, double bc2Sqrt, double weightDecay) =>
        new((float)decay, LerpWeightValue(dtype), (float)_beta2, (float)(1 - _beta2), AdamWScalars.Reciprocal(bc2Sqrt), (float)_eps, (float)negStepSize, weightDecay != 0);

    // lerp_'s weight 1 − β1 as its tensor holds it (rounded to the parameters' dtype), widened to float.
    private float LerpWeightValue(ScalarType dtype)
    {
        if (_lerpWeightValues.TryGetValue(dtype, out float w)) return w;
        using var t = tensor(1 - _beta1, dtype);
        using var f = t.to_type(ScalarType.Float32);
        return _lerpWeightValues[dtype] = f.item<float>();
    }

    private readonly Dictionary<ScalarType, float> _lerpWeightValues = new();

    // m.lerp_(g, 1 - β1); v = v·β2 + (1 - β2)·g² (both forms).
    private void UpdateMoments(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq)
    {
        expAvg.lerp_(grad, LerpWeight(param));
        expAvgSq.mul_(HeldScalars.Of(_beta2)).addcmul_(grad, grad, HeldScalars.Of(1 - _beta2));
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
        foreach (var b in _buckets.Values.SelectMany(b => b)) b.Dispose();
        _buckets.Clear();
        foreach (var f in _graphFactors.Values) f.Dispose();
        _graphFactors.Clear();
    }

    /// <summary>The state tensor <paramref name="name"/> of the parameter with state index <paramref name="index"/>, or null (tests).</summary>
    internal Tensor? StateTensor(int index, string name) => StateOf(index).TryGetValue(name, out var t) ? t : null;

    /// <summary>Requires "step" (a float32 scalar count), "exp_avg" and "exp_avg_sq" (the parameter's shape and dtype; the latter never negative).</summary>
    protected override void CheckState(string file, int index, Tensor param, IReadOnlyDictionary<string, Tensor> state)
    {
        ArgumentNullException.ThrowIfNull(param);
        ArgumentNullException.ThrowIfNull(state);
        string[] names = ["exp_avg", "exp_avg_sq", "step"];
        if (!state.Keys.Order(StringComparer.Ordinal).SequenceEqual(names))
            throw new InvalidDataException($"{file}: parameter {index} has state [{string.Join(", ", state.Keys)}]; AdamW keeps [{string.Join(", ", names)}]");
        RequireTensor(file, $"state.{index}.step", state["step"], [], ScalarType.Float32);
        float step = state["step"].item<float>();
        if (step < 0 || step != MathF.Floor(step)) throw new InvalidDataException($"{file}: 'state.{index}.step' is {step}, not a step count");
        RequireTensor(file, $"state.{index}.exp_avg", state["exp_avg"], param.shape, param.dtype);
        RequireTensor(file, $"state.{index}.exp_avg_sq", state["exp_avg_sq"], param.shape, param.dtype);
        using var negative = state["exp_avg_sq"].lt(HeldScalars.Of(0)).any();
        if (negative.item<bool>()) throw new InvalidDataException($"{file}: 'state.{index}.exp_avg_sq' has negative values");
    }

    /// <inheritdoc />
    protected override JsonObject Settings() => new() { ["betas"] = new JsonArray(_beta1, _beta2), ["eps"] = _eps };
}
