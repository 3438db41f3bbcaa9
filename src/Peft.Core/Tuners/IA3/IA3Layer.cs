using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// What every (IA)³ layer shares (PEFT <c>IA3Layer</c>): per adapter a learned vector <c>ia3_l</c> (state-dict key
/// <c>ia3_l.&lt;adapter&gt;</c>, saved as <c>ia3_l</c>) that multiplies the base layer's output features, or — for a
/// feed-forward module — its input features. Several active adapters multiply their vectors. Merging scales the base
/// weight's rows (output) or columns (input), and the bias for output scaling; unmerging divides by <c>ia3_l + 1e-8</c>
/// as PEFT does (so it is exact only up to rounding). Subclasses: <see cref="IA3Linear"/>, <see cref="IA3Conv2d"/>.
/// Mixed-adapter batches are not supported (PEFT has no <c>adapter_names</c> for IA3).
/// </summary>
public abstract class IA3Layer : BaseTunerLayer
{
    /// <summary>Per-adapter vectors (PEFT <c>ia3_l</c>, an <c>nn.ParameterDict</c>); registered by the subclass's RegisterComponents.</summary>
    private protected readonly AdapterParameterDict ia3_l = new();

    /// <summary>Wraps <paramref name="baseLayer"/>; <paramref name="isFeedforward"/> picks input (true) or output scaling.</summary>
    protected IA3Layer(string name, nn.Module<Tensor, Tensor> baseLayer, bool isFeedforward) : base(name, baseLayer)
    {
        IsFeedforward = isFeedforward;
        if (WeightAccess is null) throw new ArgumentException($"(IA)³ cannot wrap a {baseLayer.GetType().Name}: it has no weight.", nameof(baseLayer));
        (InFeatures, OutFeatures) = (WeightAccess.InFeatures, WeightAccess.OutFeatures);
    }

    /// <summary>True when the vector scales the input (PEFT <c>is_feedforward</c>), false when it scales the output.</summary>
    public bool IsFeedforward { get; }

    /// <summary>Input features (channels) of the base layer.</summary>
    public long InFeatures { get; }

    /// <summary>Output features (channels) of the base layer.</summary>
    public long OutFeatures { get; }

    /// <summary>The vector of <paramref name="adapterName"/> (shape per subclass: [1, in] / [out, 1] for linear layers). Not owned by the caller.</summary>
    public Parameter Vector(string adapterName) => ia3_l[adapterName];

    /// <summary>The shape of a new <c>ia3_l</c> (PEFT <c>update_layer</c>).</summary>
    protected abstract long[] VectorShape();

    /// <summary><paramref name="vector"/> reshaped to broadcast against the base weight in its storage layout.</summary>
    protected abstract Tensor WeightScale(Tensor vector);

    /// <summary>The product of the active adapters' vectors, shaped to broadcast against the input / output activations.</summary>
    protected abstract Tensor ActivationScale(Tensor vector);

    /// <summary>
    /// Adds (or re-initialises) <paramref name="adapterName"/> (PEFT <c>update_layer</c>): a vector of ones with
    /// <c>init_ia3_weights</c>, else standard-normal values; in the base weight's dtype and device.
    /// </summary>
    public void UpdateLayer(string adapterName, IA3Config config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var access = WeightAccess!;
        using (no_grad())
        {
            var shape = VectorShape();
            var value = config.InitIA3Weights
                ? ones(shape, dtype: access.ComputeDtype, device: access.Device)
                : randn(shape, dtype: access.ComputeDtype, device: access.Device);
            ia3_l.Set(adapterName, new Parameter(value, requires_grad: true));
        }
        RegisterAdapter(adapterName);
        SetAdapter(ActiveAdapters);
    }

    /// <inheritdoc />
    protected override IEnumerable<Parameter> AdapterParameters(string adapterName)
    {
        if (ia3_l.ContainsKey(adapterName)) yield return ia3_l[adapterName];
    }

    /// <inheritdoc />
    protected override void RemoveAdapterState(string adapterName) => ia3_l.Remove(adapterName);

    /// <inheritdoc />
    public override IEnumerable<(string Name, Tensor Value)> AdapterTensors(string adapterName)
    {
        yield return ("ia3_l", ia3_l[adapterName]);
    }

    /// <inheritdoc />
    public override void LoadAdapterTensor(string adapterName, string name, Tensor value, string key)
    {
        if (name != "ia3_l") throw new InvalidDataException($"adapter tensor '{key}': (IA)³ layers hold only 'ia3_l', not '{name}'.");
        CopyChecked(ia3_l[adapterName], value, key);
    }

    /// <summary>
    /// PEFT <c>merge</c> for one adapter: weight · ia3_l (rows for output scaling, columns for input scaling); for output
    /// scaling the bias is scaled too. The bias is left alone when the scaled weight is not finite, so that a safe merge
    /// that refuses leaves the layer unchanged.
    /// </summary>
    protected override Tensor MergedWeight(string adapterName, Tensor weight)
    {
        var vector = ia3_l[adapterName].detach();
        var merged = weight.mul(WeightScale(vector)).to(weight.dtype);
        if (!IsFeedforward && FindParameter(base_layer, "bias") is { } bias && isfinite(merged).all().item<bool>())
            bias.mul_(vector.reshape(bias.shape).to(bias.dtype));
        return merged;
    }

    /// <summary>PEFT <c>unmerge</c> for one adapter: divides by <c>ia3_l + 1e-8</c> (weight, and the bias for output scaling).</summary>
    protected override Tensor UnmergedWeight(string adapterName, Tensor weight)
    {
        var vector = ia3_l[adapterName].detach();
        if (!IsFeedforward && FindParameter(base_layer, "bias") is { } bias)
            bias.div_(vector.reshape(bias.shape).to(bias.dtype) + HeldScalars.Of(1e-8));
        return weight.div(WeightScale(vector) + HeldScalars.Of(1e-8)).to(weight.dtype);
    }

    /// <summary>
    /// PEFT <c>IA3Layer.forward</c>: the base layer alone when adapters are disabled (unmerging first) or merged;
    /// otherwise the product of the active adapters' vectors scales the input (feed-forward) or the output.
    /// </summary>
    public override Tensor forward(Tensor x)
    {
        if (DisableAdapters)
        {
            if (Merged) Unmerge();
            return base_layer.forward(x);
        }
        if (Merged) return base_layer.forward(x);
        Tensor? scaling = null;
        var dtype = x.dtype;
        foreach (var name in ActiveAdapters)
        {
            if (!ia3_l.ContainsKey(name)) continue;
            var vector = ia3_l[name];
            dtype = vector.dtype;
            scaling = scaling is null ? ActivationScale(vector) : scaling * ActivationScale(vector);
        }
        if (scaling is null) return base_layer.forward(x);
        return IsFeedforward ? ScaledInputForward(x, scaling, dtype) : ScaledOutputForward(x, scaling, dtype);
    }

    /// <summary>Input scaling: PEFT casts x to the vectors' dtype, scales, and casts back to x's dtype (linear layers).</summary>
    protected virtual Tensor ScaledInputForward(Tensor x, Tensor scaling, ScalarType dtype) =>
        base_layer.forward(x.to(dtype).mul(scaling).to(x.dtype));

    /// <summary>Output scaling: PEFT scales the base output and keeps its dtype (linear layers).</summary>
    protected virtual Tensor ScaledOutputForward(Tensor x, Tensor scaling, ScalarType dtype)
    {
        var result = base_layer.forward(x);
        return result.mul(scaling).to(result.dtype);
    }
}

/// <summary>
/// (IA)³ on a linear layer (PEFT <c>ia3.Linear</c>): wraps <see cref="Linear"/> (weight [out, in]), GPT-2's
/// <see cref="Peft.Core.Modules.Conv1D"/> (weight [in, out], PEFT's <c>fan_in_fan_out</c>) and any linear implementing
/// <see cref="IBaseLayerWeight"/>. <c>ia3_l</c> is [1, in] for a feed-forward module (input scaling), else [out, 1].
/// </summary>
public sealed class IA3Linear : IA3Layer
{
    /// <summary>Wraps <paramref name="baseLayer"/> and adds <paramref name="adapterName"/>.</summary>
    public IA3Linear(nn.Module<Tensor, Tensor> baseLayer, string adapterName, IA3Config config, bool isFeedforward)
        : base("IA3Linear", baseLayer, isFeedforward)
    {
        if (baseLayer is not (Linear or Peft.Core.Modules.Conv1D or IBaseLayerWeight))
            throw new ArgumentException($"(IA)³ Linear cannot wrap a {baseLayer.GetType().Name}.", nameof(baseLayer));
        FanInFanOut = baseLayer is Peft.Core.Modules.Conv1D;
        RegisterComponents();
        UpdateLayer(adapterName, config);
    }

    /// <summary>True when the base weight is stored [in, out] (GPT-2 Conv1D).</summary>
    public bool FanInFanOut { get; }

    /// <inheritdoc />
    protected override long[] VectorShape() => IsFeedforward ? [1, InFeatures] : [OutFeatures, 1];

    /// <inheritdoc />
    protected override Tensor WeightScale(Tensor vector) => FanInFanOut ? vector.t() : vector;

    /// <inheritdoc />
    protected override Tensor ActivationScale(Tensor vector) => vector.flatten(); // [in] or [out], over the last dim
}

/// <summary>
/// (IA)³ on a 2-D convolution (PEFT <c>ia3.Conv2d</c>): <c>ia3_l</c> is [1, C, 1, 1] with C = in_channels for a
/// feed-forward module (input scaling), else out_channels.
/// </summary>
public sealed class IA3Conv2d : IA3Layer
{
    /// <summary>Wraps <paramref name="baseLayer"/> and adds <paramref name="adapterName"/>.</summary>
    public IA3Conv2d(Conv2d baseLayer, string adapterName, IA3Config config, bool isFeedforward)
        : base("IA3Conv2d", baseLayer, isFeedforward)
    {
        RegisterComponents();
        UpdateLayer(adapterName, config);
    }

    /// <inheritdoc />
    protected override long[] VectorShape() => [1, IsFeedforward ? InFeatures : OutFeatures, 1, 1];

    /// <inheritdoc />
    protected override Tensor WeightScale(Tensor vector) => IsFeedforward ? vector : vector.transpose(0, 1); // weight [out, in, kh, kw]

    /// <inheritdoc />
    protected override Tensor ActivationScale(Tensor vector) => vector; // [1, C, 1, 1] over [B, C, H, W]

    /// <summary>PEFT's conv path casts the scaled input to the base weight's dtype.</summary>
    protected override Tensor ScaledInputForward(Tensor x, Tensor scaling, ScalarType dtype) =>
        base_layer.forward(x.to(dtype).mul(scaling).to(WeightAccess!.ComputeDtype));

    /// <summary>PEFT's conv path scales in the vectors' dtype and returns x's dtype.</summary>
    protected override Tensor ScaledOutputForward(Tensor x, Tensor scaling, ScalarType dtype) =>
        base_layer.forward(x).to(dtype).mul(scaling).to(x.dtype);
}
