using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// The method-neutral part of a tuner layer (PEFT <c>BaseTunerLayer</c>): holds the wrapped module as
/// <c>base_layer</c> (registered first, so its parameters come first in the state dict as in PEFT) and keeps the
/// per-layer adapter bookkeeping — adapter names, active adapters, merged adapters, disable — and the merge / unmerge /
/// safe-merge / delete / unload logic. A method's layer (LoRA, AdaLoRA, IA3, bottleneck adapters, ...) derives from it
/// and supplies its per-adapter state and math through the abstract members.
/// </summary>
/// <remarks>
/// Merging edits the base weight in place through <see cref="IBaseLayerWeight"/> and records which adapters are folded
/// in, so <see cref="Unmerge"/> can take them out again in reverse order. Disabling adapters unmerges first (PEFT).
/// </remarks>
public abstract class BaseTunerLayer : nn.Module<Tensor, Tensor>, ITunerLayer
{
    /// <summary>The wrapped original module (state-dict prefix <c>base_layer.</c>).</summary>
    protected readonly nn.Module<Tensor, Tensor> base_layer;

    private readonly List<string> _merged = new();
    private readonly List<string> _order = new();
    private List<string> _active = new() { "default" };

    /// <summary>Wraps <paramref name="baseLayer"/>; subclasses register their adapter containers, then call RegisterComponents.</summary>
    protected BaseTunerLayer(string name, nn.Module<Tensor, Tensor> baseLayer) : base(name)
    {
        ArgumentNullException.ThrowIfNull(baseLayer);
        base_layer = baseLayer;
        register_module("base_layer", baseLayer); // first, as in PEFT's state dict
    }

    /// <inheritdoc />
    public nn.Module<Tensor, Tensor> BaseLayer => base_layer;

    /// <summary>Read / write access to the base layer's weight (null when it has none: such a layer cannot merge).</summary>
    /// <remarks>
    /// Computed on each use, never stored: a quantized base layer is its own <see cref="IBaseLayerWeight"/>, and a field
    /// holding a module would be registered a second time by <c>RegisterComponents</c> (extra state-dict keys, and the
    /// base disposed with this layer when it is unloaded).
    /// </remarks>
    public IBaseLayerWeight? WeightAccess => BaseLayerWeight.For(base_layer);

    /// <inheritdoc />
    public IReadOnlyCollection<string> AdapterNames => _order;

    /// <inheritdoc />
    public IReadOnlyList<string> ActiveAdapters => _active;

    /// <inheritdoc />
    public bool DisableAdapters { get; set; }

    /// <inheritdoc />
    public IReadOnlyList<string> MergedAdapters => _merged;

    /// <summary>True when at least one adapter is folded into the base weight (PEFT <c>merged</c>).</summary>
    public bool Merged => _merged.Count > 0;

    /// <summary>Records <paramref name="adapterName"/> as held by this layer (called by a subclass's <c>UpdateLayer</c>).</summary>
    protected void RegisterAdapter(string adapterName)
    {
        ArgumentException.ThrowIfNullOrEmpty(adapterName);
        if (!_order.Contains(adapterName)) _order.Add(adapterName);
    }

    /// <summary>Parameters that belong to <paramref name="adapterName"/> (trainable when it is active).</summary>
    protected abstract IEnumerable<Parameter> AdapterParameters(string adapterName);

    /// <summary>Removes the adapter's modules / parameters / settings.</summary>
    protected abstract void RemoveAdapterState(string adapterName);

    /// <summary>Folds one adapter into <paramref name="weight"/> (a copy of the base weight; change it in place or return a new tensor).</summary>
    protected virtual Tensor MergedWeight(string adapterName, Tensor weight) =>
        throw new NotSupportedException($"{GetType().Name} cannot merge adapter '{adapterName}' into its base layer.");

    /// <summary>Takes one merged adapter out of <paramref name="weight"/> again.</summary>
    protected virtual Tensor UnmergedWeight(string adapterName, Tensor weight) =>
        throw new NotSupportedException($"{GetType().Name} cannot unmerge adapter '{adapterName}'.");

    /// <inheritdoc />
    public abstract IEnumerable<(string Name, Tensor Value)> AdapterTensors(string adapterName);

    /// <inheritdoc />
    public abstract void LoadAdapterTensor(string adapterName, string name, Tensor value, string key);

    /// <inheritdoc />
    public void SetAdapter(IReadOnlyList<string> adapterNames, bool trainable = true)
    {
        ArgumentNullException.ThrowIfNull(adapterNames);
        foreach (var name in _order)
        {
            bool on = trainable && adapterNames.Contains(name);
            foreach (var p in AdapterParameters(name)) p.requires_grad = on;
        }
        _active = adapterNames.ToList();
    }

    /// <inheritdoc />
    public void DeleteAdapter(string adapterName)
    {
        if (!_order.Contains(adapterName)) return;
        if (_merged.Contains(adapterName))
            throw new InvalidOperationException($"Adapter '{adapterName}' is merged into the base weight; unmerge before deleting it.");
        RemoveAdapterState(adapterName);
        _order.Remove(adapterName);
        if (_active.Remove(adapterName) && _active.Count == 0 && _order.Count > 0) SetAdapter([_order[0]]);
    }

    /// <inheritdoc />
    public void Merge(bool safeMerge = false, IReadOnlyList<string>? adapterNames = null)
    {
        var names = (adapterNames ?? _active).Where(n => _order.Contains(n) && !_merged.Contains(n)).ToList();
        if (names.Count == 0) return;
        var access = WeightAccess ?? throw new NotSupportedException($"{GetType().Name}: the base layer {base_layer.GetType().Name} has no weight to merge into.");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var name in names)
        {
            var merged = MergedWeight(name, access.GetWeight().detach().clone());
            if (safeMerge && !isfinite(merged).all().item<bool>())
                throw new InvalidOperationException($"NaNs or infinities detected while merging adapter '{name}': the adapter seems broken.");
            access.SetWeight(merged);
            _merged.Add(name);
        }
    }

    /// <inheritdoc />
    public void Unmerge()
    {
        if (_merged.Count == 0) return;
        var access = WeightAccess!;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        while (_merged.Count > 0)
        {
            var name = _merged[^1];
            access.SetWeight(UnmergedWeight(name, access.GetWeight().detach().clone()));
            _merged.RemoveAt(_merged.Count - 1);
        }
    }

    /// <summary>
    /// The forward shared by additive adapters: the base layer alone when adapters are disabled (unmerging first) or
    /// merged; otherwise <paramref name="apply"/> for each active adapter this layer holds, in order.
    /// </summary>
    /// <param name="x">The layer input.</param>
    /// <param name="apply">Applies one adapter: (name, x, result so far) → new result (may be in the adapter's dtype).</param>
    /// <remarks>
    /// The result leaves in the base output's dtype (PEFT <c>result.to(torch_result_dtype)</c>): float32 adapters on a
    /// bfloat16 base add in float32 and round once here. No cast when the dtypes already match.
    /// </remarks>
    protected Tensor ActiveAdaptersForward(Tensor x, Func<string, Tensor, Tensor, Tensor> apply)
    {
        if (DisableAdapters)
        {
            if (Merged) Unmerge();
            return base_layer.forward(x);
        }
        var result = base_layer.forward(x);
        if (Merged) return result;
        var resultDtype = result.dtype;
        foreach (var name in _active)
        {
            if (_order.Contains(name)) result = apply(name, x, result);
        }
        return AdapterDtype.CastTo(result, resultDtype);
    }

    /// <summary>
    /// Upcasts the float16 / bfloat16 parameters and buffers of <paramref name="adapterName"/> to float32 (PEFT
    /// <c>cast_adapter_dtype</c> for one layer): every per-adapter container of this layer (outside the base layer)
    /// converts that adapter's entry. Parameters stay registered, trainable as before and on their device. A layer whose
    /// adapter state copies base-layer modules (PEFT's LN tuning) overrides this to do nothing.
    /// </summary>
    public virtual void CastAdapterDtype(string adapterName)
    {
        foreach (var (name, m) in named_modules())
        {
            if (name == "base_layer" || name.StartsWith("base_layer.", StringComparison.Ordinal)) continue;
            if (m is IAdapterContainer c) c.UpcastHalfToFloat32(adapterName);
        }
    }

    /// <summary>Copies <paramref name="value"/> into <paramref name="target"/>, throwing with the key and both shapes when they differ.</summary>
    protected static void CopyChecked(Tensor target, Tensor value, string key)
    {
        if (!target.shape.SequenceEqual(value.shape))
            throw new InvalidDataException($"adapter tensor '{key}': shape [{string.Join(", ", value.shape)}] in the file does not fit the model's [{string.Join(", ", target.shape)}].");
        using var _ = no_grad();
        target.copy_(value.to(target.dtype, target.device));
    }

    /// <inheritdoc />
    public void ReleaseBaseLayer()
    {
        _internal_submodules.Remove("base_layer");
        Dispose();
    }

    /// <summary>A parameter of <paramref name="module"/> itself (not of its children) by name, or null.</summary>
    protected static Parameter? FindParameter(nn.Module module, string name)
    {
        foreach (var (n, p) in module.named_parameters(recurse: false))
        {
            if (n == name) return p;
        }
        return null;
    }
}
