using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core;

/// <summary>
/// What every LoRA layer shares (PEFT <c>LoraLayer</c>): the wrapped <c>base_layer</c>, and per adapter its rank,
/// alpha, scale, and whether it is merged. Subclasses: <see cref="LoraLinear"/> (Linear and GPT-2 Conv1D),
/// <see cref="LoraEmbedding"/>.
/// </summary>
/// <remarks>
/// Merging edits the base layer's weight in place and records which adapters are folded in, so that
/// <see cref="Unmerge"/> can subtract them again (as PEFT does). Disabling adapters unmerges first.
/// </remarks>
public abstract class LoraLayer : nn.Module<Tensor, Tensor>, ITunerLayer
{
    /// <summary>The wrapped original module (state-dict prefix <c>base_layer.</c>).</summary>
    protected readonly nn.Module<Tensor, Tensor> base_layer;

    private readonly Dictionary<string, int> _r = new(StringComparer.Ordinal);
    private readonly Dictionary<string, double> _alpha = new(StringComparer.Ordinal);
    private readonly Dictionary<string, double> _scaling = new(StringComparer.Ordinal);
    private readonly List<string> _merged = new();
    private readonly List<string> _order = new();
    private List<string> _active = new() { "default" };

    /// <summary>Wraps <paramref name="baseLayer"/>; subclasses register their adapter containers then call RegisterComponents.</summary>
    protected LoraLayer(string name, nn.Module<Tensor, Tensor> baseLayer) : base(name)
    {
        ArgumentNullException.ThrowIfNull(baseLayer);
        base_layer = baseLayer;
        register_module("base_layer", baseLayer); // first, as in PEFT's state dict
    }

    /// <inheritdoc />
    public nn.Module<Tensor, Tensor> BaseLayer => base_layer;

    /// <summary>Rank per adapter (PEFT <c>r</c>).</summary>
    public IReadOnlyDictionary<string, int> Rank => _r;

    /// <summary>Alpha per adapter (PEFT <c>lora_alpha</c>).</summary>
    public IReadOnlyDictionary<string, double> Alpha => _alpha;

    /// <summary>Scale per adapter: alpha / r, or alpha / √r with rsLoRA (PEFT <c>scaling</c>).</summary>
    public IReadOnlyDictionary<string, double> Scaling => _scaling;

    /// <inheritdoc />
    public IReadOnlyCollection<string> AdapterNames => _order;

    /// <inheritdoc />
    public IReadOnlyList<string> ActiveAdapters => _active;

    /// <inheritdoc />
    public bool DisableAdapters { get; set; }

    /// <inheritdoc />
    public IReadOnlyList<string> MergedAdapters => _merged;

    /// <summary>
    /// Per-row adapter names for the next forward (PEFT's <c>adapter_names</c> argument, passed to layers by
    /// <see cref="PeftModel"/> for the duration of one call; "__base__" = no adapter for that row). Null = active adapters.
    /// </summary>
    internal IReadOnlyList<string>? RowAdapterNames { get; set; }

    /// <summary>True when at least one adapter is folded into the base weight.</summary>
    public bool Merged => _merged.Count > 0;

    /// <summary>The base layer's weight (its <c>weight</c> parameter). Stored as the base layer stores it ([out, in] for Linear, [in, out] for Conv1D).</summary>
    public Parameter BaseWeight => FindParameter(base_layer, "weight")
        ?? throw new InvalidOperationException($"{base_layer.GetType().Name} has no 'weight' parameter.");

    /// <summary>The base layer's bias, or null.</summary>
    public Parameter? BaseBias => FindParameter(base_layer, "bias");

    /// <summary>Records rank/alpha/scale for <paramref name="adapterName"/> (called by subclasses' <c>UpdateLayer</c>).</summary>
    protected void SetAdapterScale(string adapterName, int r, double alpha, LoraConfig config)
    {
        if (r <= 0) throw new ArgumentOutOfRangeException(nameof(r), r, $"LoRA rank for adapter '{adapterName}' must be > 0, got {r}.");
        if (!(alpha > 0)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, $"lora_alpha for adapter '{adapterName}' must be > 0, got {alpha}.");
        if (!_order.Contains(adapterName)) _order.Add(adapterName);
        _r[adapterName] = r;
        _alpha[adapterName] = alpha;
        _scaling[adapterName] = config.Scaling(r, alpha);
    }

    /// <summary>Sets the scale of an adapter directly (weighted adapters).</summary>
    internal void OverrideScaling(string adapterName, double scaling) => _scaling[adapterName] = scaling;

    /// <summary>Adds (or re-initialises) <paramref name="adapterName"/> with rank <paramref name="r"/> and alpha <paramref name="alpha"/> (PEFT <c>update_layer</c>).</summary>
    public abstract void UpdateLayer(string adapterName, int r, double alpha, LoraConfig config);

    /// <summary>The weight change of one adapter, in the base weight's storage layout (PEFT <c>get_delta_weight</c>). Caller owns the result.</summary>
    public abstract Tensor GetDeltaWeight(string adapterName);

    /// <summary>Parameters that belong to <paramref name="adapterName"/>.</summary>
    protected abstract IEnumerable<Parameter> AdapterParameters(string adapterName);

    /// <summary>Removes the adapter's modules / parameters.</summary>
    protected abstract void RemoveAdapterState(string adapterName);

    /// <summary>Folds one adapter into <paramref name="weight"/> (in place or returning a new tensor) — the variant's job.</summary>
    protected abstract Tensor MergedWeight(string adapterName, Tensor weight);

    /// <summary>Subtracts one merged adapter from <paramref name="weight"/>.</summary>
    protected abstract Tensor UnmergedWeight(string adapterName, Tensor weight);

    /// <inheritdoc />
    public abstract IEnumerable<(string Name, Tensor Value)> AdapterTensors(string adapterName);

    /// <inheritdoc />
    public abstract void LoadAdapterTensor(string adapterName, string name, Tensor value, string key);

    /// <inheritdoc />
    public void SetAdapter(IReadOnlyList<string> adapterNames, bool trainable = true)
    {
        ArgumentNullException.ThrowIfNull(adapterNames);
        foreach (var name in _r.Keys)
        {
            bool on = trainable && adapterNames.Contains(name);
            foreach (var p in AdapterParameters(name)) p.requires_grad = on;
        }
        _active = adapterNames.ToList();
    }

    /// <inheritdoc />
    public void DeleteAdapter(string adapterName)
    {
        if (!_r.ContainsKey(adapterName)) return;
        if (_merged.Contains(adapterName))
            throw new InvalidOperationException($"Adapter '{adapterName}' is merged into the base weight; unmerge before deleting it.");
        RemoveAdapterState(adapterName);
        _r.Remove(adapterName);
        _alpha.Remove(adapterName);
        _scaling.Remove(adapterName);
        _order.Remove(adapterName);
        if (_active.Remove(adapterName) && _active.Count == 0 && _order.Count > 0) SetAdapter([_order[0]]);
    }

    /// <inheritdoc />
    public void Merge(bool safeMerge = false, IReadOnlyList<string>? adapterNames = null)
    {
        var names = (adapterNames ?? _active).Where(n => _r.ContainsKey(n) && !_merged.Contains(n)).ToList();
        if (names.Count == 0) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var weight = BaseWeight;
        foreach (var name in names)
        {
            var merged = MergedWeight(name, weight.detach().clone());
            if (safeMerge && !isfinite(merged).all().item<bool>())
                throw new InvalidOperationException($"NaNs or infinities detected while merging adapter '{name}': the adapter seems broken.");
            weight.copy_(merged);
            _merged.Add(name);
        }
    }

    /// <inheritdoc />
    public void Unmerge()
    {
        if (_merged.Count == 0) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var weight = BaseWeight;
        while (_merged.Count > 0)
        {
            var name = _merged[^1];
            weight.copy_(UnmergedWeight(name, weight.detach().clone()));
            _merged.RemoveAt(_merged.Count - 1);
        }
    }

    /// <summary>
    /// The forward every LoRA layer shares (PEFT <c>LoraLayer.forward</c>): the base layer alone when adapters are
    /// disabled (unmerging first) or merged; otherwise the base output with each active adapter applied, or, for a
    /// mixed-adapter batch, each row's own adapter term added (PEFT <c>_mixed_batch_forward</c>; "__base__" rows get none).
    /// </summary>
    /// <param name="x">The layer input.</param>
    /// <param name="hasAdapter">True when this layer holds the named adapter.</param>
    /// <param name="delta">The additive term of one adapter for (rows of) <paramref name="x"/>.</param>
    /// <param name="apply">Applies one adapter to the running result; null = add <paramref name="delta"/> (plain LoRA).</param>
    protected Tensor AdapterForward(Tensor x, Func<string, bool> hasAdapter, Func<string, Tensor, Tensor> delta,
        Func<string, Tensor, Tensor, Tensor>? apply = null)
    {
        if (DisableAdapters)
        {
            if (Merged) Unmerge();
            return base_layer.forward(x);
        }
        if (Merged) return base_layer.forward(x);
        var result = base_layer.forward(x);
        if (RowAdapterNames is { } rows)
        {
            result = result.clone();
            foreach (var name in rows.Distinct())
            {
                if (!hasAdapter(name)) continue;
                var idx = tensor(rows.Select((n, i) => (n, i)).Where(p => p.n == name).Select(p => (long)p.i).ToArray(), device: x.device);
                result.index_add_(0, idx, delta(name, x.index_select(0, idx)).to(result.dtype), 1);
            }
            return result;
        }
        foreach (var name in ActiveAdapters)
        {
            if (!hasAdapter(name)) continue;
            result = apply is null ? result + delta(name, x) : apply(name, x, result);
        }
        return result;
    }

    /// <summary>Copies <paramref name="value"/> into <paramref name="target"/>, throwing with the key and both shapes when they differ.</summary>
    protected static void CopyChecked(Tensor target, Tensor value, string key)
    {
        if (!target.shape.SequenceEqual(value.shape))
            throw new InvalidDataException($"adapter tensor '{key}': shape [{string.Join(", ", value.shape)}] in the file does not fit the model's [{string.Join(", ", target.shape)}].");
        using var _ = no_grad();
        target.copy_(value.to(target.dtype, target.device));
    }

    /// <summary>Unregisters the base layer (so it survives) and disposes the adapter state (after unloading).</summary>
    internal void DisposeKeepingBase()
    {
        _internal_submodules.Remove("base_layer");
        Dispose();
    }

    private static Parameter? FindParameter(nn.Module module, string name)
    {
        foreach (var (n, p) in module.named_parameters(recurse: false))
        {
            if (n == name) return p;
        }
        return null;
    }
}
