using TorchSharp;

namespace Peft.Core;

/// <summary>
/// Per-layer attention keys and values of the positions seen so far, grown one step at a time during generation.
/// HF equivalent: <c>transformers.DynamicCache</c>.
/// </summary>
/// <remarks>
/// Ownership: the cache owns its tensors. They are detached from any dispose scope and released when replaced or
/// when the cache is disposed. Keys and values are [B, H_kv, T, D].
/// <para>
/// With autograd off (generation), a layer's keys and values live in a buffer [B, H_kv, capacity, D] that grows by
/// doubling: a step copies only its new positions into the buffer and the layer's entry is a <c>narrow</c> view of the
/// filled part, instead of <c>cat</c> copying the whole past every step as DynamicCache does (same values). With
/// autograd on (prefix tuning trains through the cache) entries are concatenated, so gradients flow as in HF.
/// </para>
/// </remarks>
public sealed class KeyValueCache : IDisposable
{
    private readonly List<(torch.Tensor Key, torch.Tensor Value)?> _layers = new();
    private readonly List<(torch.Tensor Key, torch.Tensor Value)?> _buffers = new();   // growable storage behind _layers (no-grad appends)
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
        while (_buffers.Count <= layer) _buffers.Add(null);
        if (!torch.is_grad_enabled() && !key.requires_grad && !value.requires_grad) return Append(layer, key, value);
        DropBuffer(layer);
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

    // Copies key/value [B, H_kv, T_new, D] into the layer's buffer (grown by doubling when full) and makes the layer's
    // entry the view of its filled part [B, H_kv, T_past + T_new, D].
    private (torch.Tensor Key, torch.Tensor Value) Append(int layer, torch.Tensor key, torch.Tensor value)
    {
        long past = _layers[layer] is { } cur ? cur.Key.shape[2] : 0, add = key.shape[2], total = past + add;
        if (_buffers[layer] is not { } buf || buf.Key.shape[2] < total || !SameRows(buf.Key, key) || !SameRows(buf.Value, value))
        {
            long capacity = Math.Max(total, 2 * past);
            var kb = torch.empty([key.shape[0], key.shape[1], capacity, key.shape[3]], dtype: key.dtype, device: key.device);   // [B, H_kv, C, D]
            var vb = torch.empty([value.shape[0], value.shape[1], capacity, value.shape[3]], dtype: value.dtype, device: value.device);
            if (_layers[layer] is { } old)
            {
                kb.narrow(2, 0, past).copy_(old.Key).Dispose();
                vb.narrow(2, 0, past).copy_(old.Value).Dispose();
            }
            DropBuffer(layer);
            buf = (kb.DetachFromDisposeScope(), vb.DetachFromDisposeScope());
            _buffers[layer] = buf;
        }
        using (var ks = buf.Key.narrow(2, past, add)) ks.copy_(key);
        using (var vs = buf.Value.narrow(2, past, add)) vs.copy_(value);
        var k = buf.Key.narrow(2, 0, total).DetachFromDisposeScope();
        var v = buf.Value.narrow(2, 0, total).DetachFromDisposeScope();
        if (_layers[layer] is { } prev)
        {
            prev.Key.Dispose();
            prev.Value.Dispose();
        }
        _layers[layer] = (k, v);
        return (k, v);
    }

    // A buffer is reused only for the same batch rows, heads, head size, dtype and device.
    private static bool SameRows(torch.Tensor buffer, torch.Tensor x) =>
        buffer.shape[0] == x.shape[0] && buffer.shape[1] == x.shape[1] && buffer.shape[3] == x.shape[3] && buffer.dtype == x.dtype && buffer.device_type == x.device_type && buffer.device_index == x.device_index;

    private void DropBuffer(int layer)
    {
        if (layer >= _buffers.Count || _buffers[layer] is not { } b) return;
        b.Key.Dispose();
        b.Value.Dispose();
        _buffers[layer] = null;
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
            DropBuffer(i);
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
            DropBuffer(i);
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
        for (int i = 0; i < _buffers.Count; i++) DropBuffer(i);
        _buffers.Clear();
    }
}
