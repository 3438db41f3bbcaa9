using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// A bottleneck adapter on the output of a projection (Houlsby et al. 2019): y = base(x), then for each active adapter
/// in order y ← y + up(act(down(y))), with down = Linear(hidden → b) and up = Linear(b → hidden), hidden = the base
/// layer's output features, b = max(1, hidden / reduction_factor). Wraps <see cref="Linear"/>, GPT-2's
/// <see cref="Peft.Core.Modules.Conv1D"/> and any <see cref="IBaseLayerWeight"/> linear. State-dict keys:
/// <c>base_layer.*</c>, <c>adapter_down.&lt;adapter&gt;.weight</c> [b, hidden], <c>adapter_down.&lt;adapter&gt;.bias</c> [b],
/// <c>adapter_up.&lt;adapter&gt;.weight</c> [hidden, b], <c>adapter_up.&lt;adapter&gt;.bias</c> [hidden]; in the adapter file
/// without the adapter name. Not mergeable (the non-linearity): merge throws.
/// </summary>
public sealed class BottleneckAdapterLayer : BaseTunerLayer
{
    private readonly AdapterModuleDict<Linear> adapter_down = new();
    private readonly AdapterModuleDict<Linear> adapter_up = new();
    private readonly Dictionary<string, Func<Tensor, Tensor>> _activation = new(StringComparer.Ordinal);

    /// <summary>Wraps <paramref name="baseLayer"/> and adds <paramref name="adapterName"/>.</summary>
    public BottleneckAdapterLayer(nn.Module<Tensor, Tensor> baseLayer, string adapterName, AdapterConfig config) : base("BottleneckAdapterLayer", baseLayer)
    {
        if (baseLayer is not (Linear or Peft.Core.Modules.Conv1D or IBaseLayerWeight) || WeightAccess is null)
            throw new ArgumentException($"A bottleneck adapter cannot wrap a {baseLayer.GetType().Name} (supported: Linear, Conv1D, IBaseLayerWeight linears).", nameof(baseLayer));
        HiddenSize = WeightAccess.OutFeatures;
        RegisterComponents();
        UpdateLayer(adapterName, config);
    }

    /// <summary>The base layer's output features (the adapter's input and output size).</summary>
    public long HiddenSize { get; }

    /// <summary>The down-projection of an adapter: weight [b, hidden], bias [b].</summary>
    public Linear Down(string adapterName) => adapter_down[adapterName];

    /// <summary>The up-projection of an adapter: weight [hidden, b], bias [hidden].</summary>
    public Linear Up(string adapterName) => adapter_up[adapterName];

    /// <summary>
    /// Adds (or re-initialises) <paramref name="adapterName"/>: down keeps <c>nn.Linear</c>'s Kaiming-uniform init, up is
    /// zero with <c>init_adapter_weights</c> (an identity at start); both in the base weight's dtype and device.
    /// </summary>
    public void UpdateLayer(string adapterName, AdapterConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var activation = BottleneckActivations.Get(config.NonLinearity);
        var (dtype, device) = (WeightAccess!.ComputeDtype, WeightAccess.Device);
        long b = config.BottleneckSize(HiddenSize);
        var down = nn.Linear(HiddenSize, b, hasBias: true, device: device, dtype: dtype);
        var up = nn.Linear(b, HiddenSize, hasBias: true, device: device, dtype: dtype);
        if (config.InitAdapterWeights)
        {
            using var _ = no_grad();
            nn.init.zeros_(up.weight);
            nn.init.zeros_(up.bias!);
        }
        adapter_down.Set(adapterName, down);
        adapter_up.Set(adapterName, up);
        _activation[adapterName] = activation;
        RegisterAdapter(adapterName);
        SetAdapter(ActiveAdapters);
    }

    /// <inheritdoc />
    protected override IEnumerable<Parameter> AdapterParameters(string adapterName)
    {
        if (adapter_down.TryGetValue(adapterName, out var d)) foreach (var p in d.parameters()) yield return p;
        if (adapter_up.TryGetValue(adapterName, out var u)) foreach (var p in u.parameters()) yield return p;
    }

    /// <inheritdoc />
    protected override void RemoveAdapterState(string adapterName)
    {
        adapter_down.Remove(adapterName);
        adapter_up.Remove(adapterName);
        _activation.Remove(adapterName);
    }

    /// <inheritdoc />
    public override IEnumerable<(string Name, Tensor Value)> AdapterTensors(string adapterName)
    {
        var (down, up) = (adapter_down[adapterName], adapter_up[adapterName]);
        yield return ("adapter_down.weight", down.weight);
        yield return ("adapter_down.bias", down.bias!);
        yield return ("adapter_up.weight", up.weight);
        yield return ("adapter_up.bias", up.bias!);
    }

    /// <inheritdoc />
    public override void LoadAdapterTensor(string adapterName, string name, Tensor value, string key)
    {
        Tensor target = name switch
        {
            "adapter_down.weight" => adapter_down[adapterName].weight,
            "adapter_down.bias" => adapter_down[adapterName].bias!,
            "adapter_up.weight" => adapter_up[adapterName].weight,
            "adapter_up.bias" => adapter_up[adapterName].bias!,
            _ => throw new InvalidDataException($"adapter tensor '{key}': a bottleneck adapter has no '{name}'."),
        };
        CopyChecked(target, value, key);
    }

    /// <summary>The base output with each active adapter's residual bottleneck applied in turn (the base output alone when disabled).</summary>
    public override Tensor forward(Tensor x) => ActiveAdaptersForward(x, (name, _, y) =>
    {
        var down = adapter_down[name];
        var h = y.to(down.weight.dtype); // adapter weights may differ from the activations' dtype
        var delta = adapter_up[name].forward(_activation[name](down.forward(h)));
        return y.add(delta.to(y.dtype), HeldScalars.One);
    });
}
