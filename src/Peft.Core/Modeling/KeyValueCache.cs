using TorchSharp;

namespace Peft.Core;

/// <summary>
/// Per-layer attention keys and values of the positions seen so far, grown one step at a time during generation.
/// HF equivalent: <c>transformers.DynamicCache</c>.
/// </summary>
/// <remarks>
/// Ownership: the cache owns its tensors. They are detached from any dispose scope and released when replaced or
/// when the cache is disposed. Keys and values are [B, H_kv, T, D].
/// </remarks>
public sealed class KeyValueCache : IDisposable
{
    private readonly List<(torch.Tensor Key, torch.Tensor Value)?> _layers = new();
    private bool _disposed;

    /// <summary>Number of layers that hold entries.</summary>
    public int Count => _layers.Count;

    /// <summary>Number of cached positions (length of dim 2 in layer <paramref name="layer"/>; 0 when empty).</summary>
    public long GetSeqLength(int layer = 0) =>
        layer < _layers.Count && _layers[layer] is { } kv ? kv.Key.shape[2] : 0;

    /// <summary>The cached key and value of a layer, or null. Not owned by the caller.</summary>
    public (torch.Tensor Key, torch.Tensor Value)? this[int layer] => layer < _layers.Count ? _layers[layer] : null;

    /// <summary>
    /// Appends this step's key and value ([B, H_kv, T_new, D]) for <paramref name="layer"/> and returns the full
    /// key and value ([B, H_kv, T_past + T_new, D]). The returned tensors belong to the cache: do not dispose them.
    /// </summary>
    public (torch.Tensor Key, torch.Tensor Value) Update(int layer, torch.Tensor key, torch.Tensor value)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (_layers.Count <= layer) _layers.Add(null);
        torch.Tensor k, v;
        if (_layers[layer] is { } old)
        {
            k = torch.cat([old.Key, key], dim: 2);
            v = torch.cat([old.Value, value], dim: 2);
            old.Key.Dispose();
            old.Value.Dispose();
        }
        else
        {
            k = key.alias();
            v = value.alias();
        }
        k.DetachFromDisposeScope();
        v.DetachFromDisposeScope();
        _layers[layer] = (k, v);
        return (k, v);
    }

    /// <summary>Reorders the batch dimension (beam search): row i becomes row <paramref name="beamIdx"/>[i].</summary>
    public void ReorderCache(torch.Tensor beamIdx)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        for (int i = 0; i < _layers.Count; i++)
        {
            if (_layers[i] is not { } kv) continue;
            var idx = beamIdx.to(kv.Key.device);
            var k = kv.Key.index_select(0, idx);
            var v = kv.Value.index_select(0, idx);
            idx.Dispose();
            k.DetachFromDisposeScope();
            v.DetachFromDisposeScope();
            kv.Key.Dispose();
            kv.Value.Dispose();
            _layers[i] = (k, v);
        }
    }

    /// <summary>Keeps the first <paramref name="maxLength"/> positions of every layer.</summary>
    public void Crop(long maxLength)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        for (int i = 0; i < _layers.Count; i++)
        {
            if (_layers[i] is not { } kv || kv.Key.shape[2] <= maxLength) continue;
            var k = kv.Key.narrow(2, 0, maxLength).contiguous();
            var v = kv.Value.narrow(2, 0, maxLength).contiguous();
            k.DetachFromDisposeScope();
            v.DetachFromDisposeScope();
            kv.Key.Dispose();
            kv.Value.Dispose();
            _layers[i] = (k, v);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var kv in _layers)
        {
            if (kv is not { } x) continue;
            x.Key.Dispose();
            x.Value.Dispose();
        }
        _layers.Clear();
    }
}
