using TorchSharp;
using TorchSharp.Modules;

namespace Peft.Core.Tuners;

/// <summary>
/// Per-adapter child modules keyed by adapter name (PEFT's <c>nn.ModuleDict</c> in a tuner layer): state-dict keys come
/// out as <c>&lt;adapter&gt;.&lt;param&gt;</c>. Unlike TorchSharp's <c>ModuleDict</c>, adapters can be added and removed
/// after construction (registration is updated at once).
/// </summary>
/// <typeparam name="T">The module type of each entry.</typeparam>
internal sealed class AdapterModuleDict<T> : torch.nn.Module, IAdapterContainer where T : torch.nn.Module
{
    private readonly Dictionary<string, T> _items = new(StringComparer.Ordinal);

    /// <summary>Creates an empty dictionary.</summary>
    public AdapterModuleDict() : base("AdapterModuleDict") { }

    /// <summary>The entry of <paramref name="adapter"/>.</summary>
    public T this[string adapter] => _items.TryGetValue(adapter, out var m) ? m
        : throw new KeyNotFoundException($"no adapter '{adapter}' (have: {string.Join(", ", _items.Keys)}).");

    /// <summary>Adapter names in insertion order.</summary>
    public IEnumerable<string> Keys => _internal_submodules.Keys;

    /// <summary>Whether <paramref name="adapter"/> has an entry.</summary>
    public bool ContainsKey(string adapter) => _items.ContainsKey(adapter);

    /// <summary>Gets the entry of <paramref name="adapter"/> if present.</summary>
    public bool TryGetValue(string adapter, out T module)
    {
        var ok = _items.TryGetValue(adapter, out var m);
        module = m!;
        return ok;
    }

    /// <summary>Adds (and registers) the entry of <paramref name="adapter"/>, replacing an existing one (which is disposed).</summary>
    public void Set(string adapter, T module)
    {
        if (_items.TryGetValue(adapter, out var old))
        {
            _items[adapter] = module;
            _internal_submodules[adapter] = module;
            old.Dispose();
            return;
        }
        _items.Add(adapter, module);
        register_module(adapter, module);
    }

    /// <inheritdoc />
    public void UpcastHalfToFloat32(string adapter)
    {
        if (!_items.TryGetValue(adapter, out var m)) return;
        // Module.to replaces the parameters in place of the old ones (registration, fields, requires_grad, device kept).
        if (m.parameters().Any(p => AdapterDtype.IsHalf(p.dtype)) || m.buffers().Any(b => AdapterDtype.IsHalf(b.dtype)))
            m.to(torch.ScalarType.Float32);
    }

    /// <summary>Removes the entry of <paramref name="adapter"/> without disposing it, and returns it.</summary>
    public T Detach(string adapter)
    {
        if (!_items.Remove(adapter, out var m)) throw new KeyNotFoundException($"no adapter '{adapter}'.");
        _internal_submodules.Remove(adapter);
        return m;
    }

    /// <summary>Removes and disposes the entry of <paramref name="adapter"/>; returns false when absent.</summary>
    public bool Remove(string adapter)
    {
        if (!_items.Remove(adapter, out var m)) return false;
        _internal_submodules.Remove(adapter);
        m.Dispose();
        return true;
    }
}

/// <summary>
/// Per-adapter parameters keyed by adapter name (PEFT's <c>nn.ParameterDict</c>, e.g. <c>lora_embedding_A</c>):
/// state-dict keys come out as <c>&lt;adapter&gt;</c>.
/// </summary>
internal sealed class AdapterParameterDict : torch.nn.Module, IAdapterContainer
{
    /// <summary>Creates an empty dictionary.</summary>
    public AdapterParameterDict() : base("AdapterParameterDict") { }

    /// <summary>The parameter of <paramref name="adapter"/>.</summary>
    public Parameter this[string adapter] => _internal_params.TryGetValue(adapter, out var p) ? p
        : throw new KeyNotFoundException($"no adapter '{adapter}' (have: {string.Join(", ", Keys)}).");

    /// <summary>Adapter names in insertion order.</summary>
    public IEnumerable<string> Keys => _internal_params.Keys;

    /// <summary>Whether <paramref name="adapter"/> has an entry.</summary>
    public bool ContainsKey(string adapter) => _internal_params.ContainsKey(adapter);

    /// <summary>Adds or replaces the parameter of <paramref name="adapter"/>.</summary>
    public void Set(string adapter, Parameter value)
    {
        value.DetachFromDisposeScope();
        if (_internal_params.TryGetValue(adapter, out var old))
        {
            _internal_params[adapter] = value;
            old.Dispose();
            return;
        }
        register_parameter(adapter, value);
    }

    /// <inheritdoc />
    public void UpcastHalfToFloat32(string adapter)
    {
        if (!_internal_params.TryGetValue(adapter, out var old) || !AdapterDtype.IsHalf(old.dtype)) return;
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        // PEFT: param.data = param.data.to(float32) — same slot, same requires_grad, same device.
        Set(adapter, new Parameter(old.detach().to(torch.ScalarType.Float32).MoveToOuterDisposeScope(), old.requires_grad));
    }

    /// <summary>Removes and disposes the parameter of <paramref name="adapter"/>; returns false when absent.</summary>
    public bool Remove(string adapter)
    {
        if (!_internal_params.TryGetValue(adapter, out var p)) return false;
        _internal_params.Remove(adapter);
        p.Dispose();
        return true;
    }
}
