using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;
using Peft.Core.Torch.Cuda;

namespace Peft.Core.Tuners;

/// <summary>
/// LoRA on a linear layer (PEFT <c>lora.Linear</c>): y = base(x) + s · B(A(dropout(x))), A = Linear(in → r, no bias),
/// B = Linear(r → out, no bias). Wraps <see cref="Linear"/> (weight [out, in]) and GPT-2's
/// <see cref="Peft.Core.Modules.Conv1D"/> (weight [in, out], i.e. <c>fan_in_fan_out</c>). State-dict keys:
/// <c>base_layer.weight</c>, <c>lora_A.&lt;adapter&gt;.weight</c>, <c>lora_B.&lt;adapter&gt;.weight</c> and, for DoRA,
/// <c>lora_magnitude_vector.&lt;adapter&gt;.weight</c>. The per-adapter math lives in a variant strategy
/// (<see cref="ILoraLinearVariant"/>: plain LoRA or DoRA).
/// </summary>
public class LoraLinear : LoraLayer
{
    private readonly AdapterModuleDict<nn.Module<Tensor, Tensor>> lora_dropout = new();
    private readonly AdapterModuleDict<Linear> lora_A = new();
    private readonly AdapterModuleDict<Linear> lora_B = new();
    private readonly AdapterModuleDict<DoraMagnitude> lora_magnitude_vector = new();
    private readonly Dictionary<string, ILoraLinearVariant> _variants = new(StringComparer.Ordinal);

    /// <summary>Wraps <paramref name="baseLayer"/> and adds <paramref name="adapterName"/>.</summary>
    /// <param name="baseLayer">A <see cref="Linear"/>, a <see cref="Peft.Core.Modules.Conv1D"/>, or a linear implementing <see cref="IBaseLayerWeight"/> (weight [out, in]).</param>
    /// <param name="adapterName">The first adapter.</param>
    /// <param name="r">Rank.</param>
    /// <param name="alpha">Alpha.</param>
    /// <param name="config">The rest of the settings (dropout, init, rsLoRA, DoRA, fan_in_fan_out).</param>
    public LoraLinear(nn.Module<Tensor, Tensor> baseLayer, string adapterName, int r, double alpha, LoraConfig config) : base("LoraLinear", baseLayer)
    {
        if (baseLayer is not (Linear or Peft.Core.Modules.Conv1D or IBaseLayerWeight))
            throw new ArgumentException($"LoRA Linear cannot wrap a {baseLayer.GetType().Name}.", nameof(baseLayer));
        (InFeatures, OutFeatures) = (WeightAccess!.InFeatures, WeightAccess.OutFeatures);
        FanInFanOut = baseLayer is Peft.Core.Modules.Conv1D;
        RegisterComponents();
        UpdateLayer(adapterName, r, alpha, config);
    }

    /// <summary>Input features of the base layer.</summary>
    public long InFeatures { get; }

    /// <summary>Output features of the base layer.</summary>
    public long OutFeatures { get; }

    /// <summary>True when the base weight is stored [in, out] (GPT-2 Conv1D).</summary>
    public bool FanInFanOut { get; }

    /// <summary>lora_A of an adapter: weight [r, in].</summary>
    public Linear LoraA(string adapterName) => lora_A[adapterName];

    /// <summary>lora_B of an adapter: weight [out, r].</summary>
    public Linear LoraB(string adapterName) => lora_B[adapterName];

    /// <summary>The DoRA magnitude of an adapter ([out]), or null for plain LoRA.</summary>
    public Parameter? Magnitude(string adapterName) => lora_magnitude_vector.TryGetValue(adapterName, out var m) ? m.weight : null;

    internal nn.Module<Tensor, Tensor> Dropout(string adapterName) => lora_dropout[adapterName];

    /// <summary>True when <paramref name="adapterName"/> is the only active adapter this layer holds.</summary>
    internal bool IsSoleActiveAdapter(string adapterName) =>
        ActiveAdapters.Count(a => _variants.ContainsKey(a)) == 1 && _variants.ContainsKey(adapterName) && ActiveAdapters.Contains(adapterName);

    internal AdapterModuleDict<DoraMagnitude> MagnitudeDict => lora_magnitude_vector;

    /// <inheritdoc />
    public override void UpdateLayer(string adapterName, int r, double alpha, LoraConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        SetAdapterScale(adapterName, r, alpha, config);
        var (dtype, device) = (WeightAccess!.ComputeDtype, WeightAccess.Device);
        lora_dropout.Set(adapterName, config.LoraDropout > 0 ? nn.Dropout(config.LoraDropout) : nn.Identity());
        var a = nn.Linear(InFeatures, r, hasBias: false, device: device, dtype: dtype);
        var b = nn.Linear(r, OutFeatures, hasBias: false, device: device, dtype: dtype);
        InitLinearFamilyWeights(a.weight, b.weight, config, r);   // false: both keep nn.Linear's default (Kaiming-uniform) init
        lora_A.Set(adapterName, a);
        lora_B.Set(adapterName, b);
        ILoraLinearVariant variant = config.UseDora ? new DoraLinearVariant() : StandardLoraVariant.Instance;
        _variants[adapterName] = variant;
        if (!config.UseDora) lora_magnitude_vector.Remove(adapterName);
        variant.Init(this, adapterName);
        SetAdapter(ActiveAdapters);
    }

    /// <summary>B·A, [out, in], in the adapter weights' dtype. Caller owns the result.</summary>
    internal Tensor LoraProduct(string adapterName) => lora_B[adapterName].weight.matmul(lora_A[adapterName].weight);

    /// <summary>The base weight as [out, in] (transposed for Conv1D). A view; not owned by the caller.</summary>
    internal Tensor WeightOutIn(Tensor weight) => FanInFanOut ? weight.t() : weight;

    /// <inheritdoc />
    public override Tensor GetDeltaWeight(string adapterName)
    {
        var delta = LoraProduct(adapterName).mul(HeldScalars.Of(Scaling[adapterName]));
        return FanInFanOut ? delta.t() : delta;
    }

    /// <inheritdoc />
    protected override IEnumerable<Parameter> AdapterParameters(string adapterName)
    {
        if (lora_A.TryGetValue(adapterName, out var a)) yield return a.weight;
        if (lora_B.TryGetValue(adapterName, out var b)) yield return b.weight;
        if (lora_magnitude_vector.TryGetValue(adapterName, out var m)) yield return m.weight;
    }

    /// <inheritdoc />
    protected override void RemoveLoraState(string adapterName)
    {
        lora_A.Remove(adapterName);
        lora_B.Remove(adapterName);
        lora_dropout.Remove(adapterName);
        lora_magnitude_vector.Remove(adapterName);
        _variants.Remove(adapterName);
    }

    /// <inheritdoc />
    protected override Tensor MergedWeight(string adapterName, Tensor weight) => _variants[adapterName].Merge(this, adapterName, weight);

    /// <inheritdoc />
    protected override Tensor UnmergedWeight(string adapterName, Tensor weight) => _variants[adapterName].Unmerge(this, adapterName, weight);

    /// <inheritdoc />
    public override IEnumerable<(string Name, Tensor Value)> AdapterTensors(string adapterName)
    {
        yield return ("lora_A.weight", lora_A[adapterName].weight);
        yield return ("lora_B.weight", lora_B[adapterName].weight);
        if (lora_magnitude_vector.TryGetValue(adapterName, out var m)) yield return ("lora_magnitude_vector", m.weight);
    }

    /// <inheritdoc />
    public override void LoadAdapterTensor(string adapterName, string name, Tensor value, string key)
    {
        Tensor target = name switch
        {
            "lora_A.weight" => lora_A[adapterName].weight,
            "lora_B.weight" => lora_B[adapterName].weight,
            "lora_magnitude_vector" when lora_magnitude_vector.TryGetValue(adapterName, out var m) => m.weight,
            _ => throw new InvalidDataException($"adapter tensor '{key}': LoRA layer has no '{name}' for adapter '{adapterName}' (expected lora_A.weight, lora_B.weight{(lora_magnitude_vector.ContainsKey(adapterName) ? ", lora_magnitude_vector" : "")})."),
        };
        CopyChecked(target, value, key);
    }

    /// <inheritdoc />
    protected override ScalarType? AdapterInputDtype(string adapterName) => lora_A[adapterName].weight.dtype;

    /// <inheritdoc />
    public override Tensor forward(Tensor x) =>
        AdapterForward(x, _variants.ContainsKey, MixedBatchDelta, (name, input, result) => _variants[name].Forward(this, name, input, result));

    /// <summary>One adapter's term for the rows of a mixed-adapter batch (plain LoRA only, as in PEFT).</summary>
    private Tensor MixedBatchDelta(string name, Tensor x)
    {
        if (_variants[name] is not StandardLoraVariant)
            throw new NotSupportedException($"Mixed-adapter batches do not support DoRA (adapter '{name}').");
        return LoraB(name).forward(LoraA(name).forward(Dropout(name).forward(x))).mul(HeldScalars.Of(Scaling[name]));
    }
}

/// <summary>The per-adapter math of a LoRA linear layer (plain LoRA, DoRA, ...): PEFT's <c>LoraVariant</c>.</summary>
internal interface ILoraLinearVariant
{
    /// <summary>Called after A and B are created (DoRA creates its magnitude here).</summary>
    void Init(LoraLinear layer, string adapterName);

    /// <summary>Adds the adapter's contribution to <paramref name="result"/> = base(x) (and earlier adapters). Returns the new result.</summary>
    Tensor Forward(LoraLinear layer, string adapterName, Tensor x, Tensor result);

    /// <summary>The merged weight (storage layout) from the current <paramref name="weight"/>.</summary>
    Tensor Merge(LoraLinear layer, string adapterName, Tensor weight);

    /// <summary>The weight before <see cref="Merge"/> from the merged <paramref name="weight"/>.</summary>
    Tensor Unmerge(LoraLinear layer, string adapterName, Tensor weight);
}

/// <summary>Plain LoRA: y += s·B(A(dropout(x))); W' = W + s·B·A.</summary>
internal sealed class StandardLoraVariant : ILoraLinearVariant
{
    /// <summary>The shared instance (stateless).</summary>
    public static StandardLoraVariant Instance { get; } = new();

    /// <inheritdoc />
    public void Init(LoraLinear layer, string adapterName) { }

    /// <inheritdoc />
    public Tensor Forward(LoraLinear layer, string adapterName, Tensor x, Tensor result)
    {
        var dropout = layer.Dropout(adapterName);
        var input = dropout is TorchSharp.Modules.Identity ? x : dropout.forward(x);                 // lora_dropout = 0: no op at all
        var h = layer.LoraB(adapterName).forward(layer.LoraA(adapterName).forward(input));
        double s = layer.Scaling[adapterName];
        bool recordsGrad = is_grad_enabled() && (result.requires_grad || h.requires_grad);
        if (recordsGrad && HalfTailInPlace(layer, adapterName, result, h))
        {
            // result (half) += s·h: the add computes in float32, rounds to float32 and then to result's dtype on the store:
            // PEFT's float32 add and its cast back (torch_result_dtype) in one native kernel with a native backward. The
            // fused kernel would need a custom autograd node, whose host cost outweighed the kernel it saved on the
            // host-bound OPT-125m step (bench fused_ab); without autograd (below) it has no node and stays.
            if (ExactScale(s) && result.dtype == ScalarType.BFloat16) return result.add_(h, HeldScalars.Of(s));
            return result.add_(h.mul_(HeldScalars.Of(s)), HeldScalars.One);
        }
        if (FusedTail(layer, adapterName, result, h)) return LoraTailFunction.Apply(result, h, s);   // PEFT's roundings, one kernel
        if (ExactScale(s)) return result.add(h, HeldScalars.Of(s));                                  // s·h exact: one kernel rounds as PEFT's two
        return result.add(h.mul_(HeldScalars.Of(s)), HeldScalars.One);                               // PEFT: result + lora_B(...) * scaling
    }

    // PEFT multiplies h by the scaling, rounds, then adds. torch's add(h, alpha) is contracted to one fused
    // multiply-add (on the CPU as on CUDA), which rounds once and differs from PEFT in the last bit for most scalings
    // (0.3 in float32: 18 % of the elements). When s is a power of two ≥ 1, s·h is exact and the one-kernel add gives
    // PEFT's result; otherwise h (lora_B's output, not saved by any backward) is scaled in place and then added.
    private static bool ExactScale(double s) => s >= 1 && double.IsFinite(s) && (BitConverter.DoubleToInt64Bits(s) & 0xF_FFFF_FFFF_FFFFL) == 0;

    // The float32 tail of a half base output (PEFT's autocast float32 adapters on a bfloat16 / float16 model) while
    // autograd records, when this is the layer's one active adapter (PEFT casts back once, after the last adapter):
    // base_layer's fresh output takes the sum in place (not a leaf that requires grad: autograd refuses those). The
    // add's backward hands result's grad through and casts it to float32 for h, as PEFT's cast and add do; with an
    // exact scale the add's alpha multiplies the bfloat16 grad, exact too (bfloat16 has float32's range; float16 does
    // not, so a float16 result scales h first, in float32, as PEFT).
    private static bool HalfTailInPlace(LoraLinear layer, string adapterName, Tensor result, Tensor h) =>
        AdapterDtype.IsHalf(result.dtype) && h.dtype == ScalarType.Float32 && !(result.is_leaf && result.requires_grad)
        && layer.IsSoleActiveAdapter(adapterName) && result.shape.SequenceEqual(h.shape);

    // The fused tail (CUDA, float32 h): for a float32 result when the scale is not exact (it then replaces the scale and
    // the add); for a half result only when this is the layer's one active adapter, because the kernel also casts back
    // to the result's dtype, which PEFT does once after the last adapter (while autograd records, HalfTailInPlace
    // takes that case first).
    private static bool FusedTail(LoraLinear layer, string adapterName, Tensor result, Tensor h) =>
        FusedKernels.EnabledFor(LoraTailFunction.Family) && FusedKernels.AppliesWithFloat32(result, h)
        && (result.dtype == ScalarType.Float32 ? !ExactScale(layer.Scaling[adapterName]) : layer.IsSoleActiveAdapter(adapterName))
        && result.shape.SequenceEqual(h.shape);

    /// <inheritdoc />
    /// <remarks>PEFT's default merge (<c>weight.data += delta</c>): a float32 delta is added in float32 and rounded once to the weight's dtype.</remarks>
    public Tensor Merge(LoraLinear layer, string adapterName, Tensor weight) => AdapterDtype.CastTo(weight.add(layer.GetDeltaWeight(adapterName), HeldScalars.One), weight.dtype);

    /// <inheritdoc />
    /// <remarks>PEFT: <c>weight.data -= delta.to(orig_dtype)</c> (the delta is rounded to the weight's dtype first).</remarks>
    public Tensor Unmerge(LoraLinear layer, string adapterName, Tensor weight) => weight - AdapterDtype.CastTo(layer.GetDeltaWeight(adapterName), weight.dtype);
}

/// <summary>The DoRA magnitude of one adapter: a module with one parameter <c>weight</c> [out] (PEFT <c>DoraLinearLayer</c>).</summary>
internal sealed class DoraMagnitude : nn.Module
{
    /// <summary>m, [out].</summary>
    public Parameter weight;

    /// <summary>Creates the magnitude from <paramref name="value"/> (copied).</summary>
    public DoraMagnitude(Tensor value) : base("DoraMagnitude")
    {
        weight = new Parameter(value.detach().clone());
        weight.DetachFromDisposeScope();
        RegisterComponents();
    }
}

/// <summary>
/// DoRA (weight-decomposed LoRA, PEFT <c>DoraLinearVariant</c>): W' = m / ‖W + s·B·A‖_row · (W + s·B·A), the norm taken
/// per output feature and treated as a constant in backward. m starts as ‖W + s·B·A‖.
/// </summary>
internal sealed class DoraLinearVariant : ILoraLinearVariant
{
    private Tensor? _mergedNorm;

    private static Tensor WeightNorm(Tensor weightOutIn, Tensor loraWeight, double scaling) =>
        linalg.norm(weightOutIn.add(loraWeight.mul(HeldScalars.Of(scaling)), HeldScalars.One), dims: [1]);

    /// <inheritdoc />
    public void Init(LoraLinear layer, string adapterName)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var w = layer.WeightOutIn(layer.WeightAccess!.GetWeight());
        var norm = WeightNorm(w, layer.LoraProduct(adapterName).to(w.dtype), layer.Scaling[adapterName]);
        layer.MagnitudeDict.Set(adapterName, new DoraMagnitude(norm));
    }

    /// <inheritdoc />
    public Tensor Forward(LoraLinear layer, string adapterName, Tensor x, Tensor result)
    {
        double s = layer.Scaling[adapterName];
        var dropped = layer.Dropout(adapterName).forward(x);
        var magnitude = layer.Magnitude(adapterName)!;
        // PEFT DoraLinearLayer.forward: the base weight and B·A in x's dtype (float32 with upcast adapters).
        var weight = AdapterDtype.CastTo(layer.WeightOutIn(layer.WeightAccess!.GetWeight()), x.dtype);
        var loraWeight = AdapterDtype.CastTo(layer.LoraProduct(adapterName).detach(), x.dtype);
        var norm = WeightNorm(weight, loraWeight, s).detach();
        var scale = (magnitude / norm).view(1, -1); // [1, out]
        var loraResult = layer.LoraB(adapterName).forward(layer.LoraA(adapterName).forward(dropped));
        Tensor baseResult;
        if (ReferenceEquals(dropped, x) || !layer.training)
        {
            baseResult = layer.BaseBias is { } bias ? result - bias : result;
        }
        else
        {
            baseResult = nn.functional.linear(dropped, weight);
        }
        // PEFT DoraLinearVariant: result + ((m/‖·‖ − 1)·base + m/‖·‖·lora·s), the DoRA term summed first
        var doraTerm = ((scale - HeldScalars.Of(1)) * baseResult).add(scale * loraResult * HeldScalars.Of(s), HeldScalars.One);
        return result.add(doraTerm, HeldScalars.One);
    }

    /// <inheritdoc />
    public Tensor Merge(LoraLinear layer, string adapterName, Tensor weight)
    {
        var w = layer.WeightOutIn(weight);
        var delta = layer.LoraProduct(adapterName).mul(HeldScalars.Of(layer.Scaling[adapterName])).to(w.dtype);
        var norm = WeightNorm(w, delta, 1.0).detach();
        _mergedNorm?.Dispose();
        _mergedNorm = norm.clone().DetachFromDisposeScope();
        var factor = (layer.Magnitude(adapterName)! / norm).view(-1, 1);
        var merged = factor * w.add(delta, HeldScalars.One);
        return layer.FanInFanOut ? merged.t() : merged;
    }

    /// <inheritdoc />
    public Tensor Unmerge(LoraLinear layer, string adapterName, Tensor weight)
    {
        var norm = _mergedNorm ?? throw new InvalidOperationException($"DoRA adapter '{adapterName}' was not merged.");
        var w = layer.WeightOutIn(weight);
        var delta = layer.LoraProduct(adapterName).mul(HeldScalars.Of(layer.Scaling[adapterName])).to(w.dtype);
        var factor = (layer.Magnitude(adapterName)! / norm).view(-1, 1);
        var orig = w / factor - delta;
        return layer.FanInFanOut ? orig.t() : orig;
    }
}
