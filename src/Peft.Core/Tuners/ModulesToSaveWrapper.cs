using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// Keeps the original module and one trainable full copy per adapter (PEFT <c>ModulesToSaveWrapper</c>, used for
/// <c>modules_to_save</c> such as a classifier head). State-dict keys: <c>original_module.*</c> and
/// <c>modules_to_save.&lt;adapter&gt;.*</c>; adapter files store the copy as <c>&lt;path&gt;.&lt;param&gt;</c>.
/// Forward runs the active adapter's copy, or the original when adapters are disabled or the active adapter has none.
/// </summary>
public sealed class ModulesToSaveWrapper : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> original_module;
    private readonly AdapterModuleDict<nn.Module<Tensor, Tensor>> modules_to_save = new();
    private string? _active;

    /// <summary>Wraps <paramref name="original"/> and adds a copy for <paramref name="adapterName"/>.</summary>
    public ModulesToSaveWrapper(nn.Module<Tensor, Tensor> original, string adapterName) : base("ModulesToSaveWrapper")
    {
        original_module = original;
        RegisterComponents();
        foreach (var (_, p) in original.named_parameters()) p.requires_grad = false;
        Update(adapterName);
        SetAdapter(adapterName);
    }

    /// <summary>The original module.</summary>
    public nn.Module<Tensor, Tensor> OriginalModule => original_module;

    /// <summary>Adapters with a copy.</summary>
    public IEnumerable<string> AdapterNames => modules_to_save.Keys;

    /// <summary>The active adapter (null: none).</summary>
    public string? ActiveAdapter => _active;

    /// <summary>When true, forward uses the original module.</summary>
    public bool DisableAdapters { get; set; }

    /// <summary>The copy of <paramref name="adapterName"/>.</summary>
    public nn.Module<Tensor, Tensor> this[string adapterName] => modules_to_save[adapterName];

    /// <summary>Whether <paramref name="adapterName"/> has a copy.</summary>
    public bool Has(string adapterName) => modules_to_save.ContainsKey(adapterName);

    /// <summary>Adds a copy of the original for <paramref name="adapterName"/> (if absent); <see cref="SetAdapter"/> activates it.</summary>
    public void Update(string adapterName)
    {
        if (!modules_to_save.ContainsKey(adapterName))
        {
            var copy = ModuleCloner.Clone(original_module);
            foreach (var (_, p) in copy.named_parameters()) p.requires_grad = true;
            modules_to_save.Set(adapterName, copy);
        }
    }

    /// <summary>Makes <paramref name="adapterName"/>'s copy the one forward uses (no-op if it has none); only it requires grad.</summary>
    public void SetAdapter(string adapterName, bool trainable = true)
    {
        if (!modules_to_save.ContainsKey(adapterName)) return;
        foreach (var name in modules_to_save.Keys)
        {
            foreach (var (_, p) in modules_to_save[name].named_parameters()) p.requires_grad = trainable && name == adapterName;
        }
        _active = adapterName;
    }

    /// <summary>Makes no copy active (forward uses the original) and freezes all copies.</summary>
    public void ClearActive()
    {
        foreach (var name in modules_to_save.Keys)
        {
            foreach (var (_, p) in modules_to_save[name].named_parameters()) p.requires_grad = false;
        }
        _active = null;
    }

    /// <summary>Removes the copy of <paramref name="adapterName"/>.</summary>
    public void DeleteAdapter(string adapterName)
    {
        modules_to_save.Remove(adapterName);
        if (_active == adapterName) _active = modules_to_save.Keys.FirstOrDefault();
    }

    /// <summary>
    /// Detaches the module that should stand in for this wrapper after unloading (the active copy, or the original when
    /// there is none) and disposes the rest.
    /// </summary>
    internal nn.Module<Tensor, Tensor> TakeForUnload()
    {
        nn.Module<Tensor, Tensor> keep;
        if (_active is not null && modules_to_save.TryGetValue(_active, out var copy))
        {
            keep = copy;
            modules_to_save.Detach(_active);
        }
        else
        {
            keep = original_module;
            _internal_submodules.Remove("original_module");
        }
        Dispose();
        return keep;
    }

    /// <summary>The copy's state dict as PEFT saves it (keys relative to the wrapper, adapter segment removed).</summary>
    public IEnumerable<(string Name, Tensor Value)> AdapterTensors(string adapterName) =>
        modules_to_save[adapterName].state_dict().Select(kv => (kv.Key, kv.Value));

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        if (DisableAdapters || _active is null || !modules_to_save.ContainsKey(_active)) return original_module.forward(x);
        return modules_to_save[_active].forward(x);
    }
}

/// <summary>Deep copies of the module types that can be listed in <c>modules_to_save</c>.</summary>
internal static class ModuleCloner
{
    /// <summary>
    /// A new module of the same type with copies of every parameter and buffer (PyTorch <c>copy.deepcopy</c>). Supports
    /// <see cref="Linear"/>, <see cref="Peft.Core.Modules.Conv1D"/>, <see cref="Embedding"/>, <see cref="LayerNorm"/> and
    /// any module implementing <see cref="ICloneableModule"/>; throws naming the type otherwise.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Clone(nn.Module<Tensor, Tensor> module)
    {
        ArgumentNullException.ThrowIfNull(module);
        nn.Module<Tensor, Tensor> copy;
        switch (module)
        {
            case ICloneableModule c:
                return c.CloneModule();
            case Linear l:
                copy = nn.Linear(l.in_features, l.out_features, hasBias: l.bias is not null, device: l.weight.device, dtype: l.weight.dtype);
                break;
            case Peft.Core.Modules.Conv1D c1:
                copy = new Peft.Core.Modules.Conv1D(c1.OutFeatures, c1.InFeatures, c1.weight.dtype, c1.weight.device);
                break;
            case Embedding e:
                copy = nn.Embedding(e.weight!.shape[0], e.weight.shape[1], device: e.weight.device, dtype: e.weight.dtype);
                break;
            case LayerNorm ln:
                copy = nn.LayerNorm(ln.normalized_shape, ln.eps, ln.elementwise_affine, bias: ln.bias is not null, device: ln.weight?.device, dtype: ln.weight?.dtype);
                break;
            default:
                throw new NotSupportedException(
                    $"modules_to_save: cannot copy a {module.GetType().FullName}; supported are Linear, Conv1D, Embedding, LayerNorm and ICloneableModule.");
        }
        foreach (var (_, p) in copy.named_parameters()) p.DetachFromDisposeScope();
        foreach (var (_, b) in copy.named_buffers()) b.DetachFromDisposeScope();
        var source = module.state_dict();
        using (no_grad())
        {
            foreach (var (name, t) in copy.state_dict()) t.copy_(source[name]);
        }
        return copy;
    }
}

/// <summary>A module that can deep-copy itself (so it can be listed in <c>modules_to_save</c>).</summary>
internal interface ICloneableModule
{
    /// <summary>A new module with copies of this one's parameters and buffers.</summary>
    nn.Module<Tensor, Tensor> CloneModule();
}
