using TorchSharp;
using Peft.Core.Torch;

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
/// <para>
/// Static mode (HF <c>StaticCache</c>; made by generation for CUDA-graph decoding, see <see cref="CreateStatic"/>): the
/// buffers are preallocated to a fixed capacity C and zero-filled. The prompt is written as in the dynamic mode; after
/// <see cref="BeginStaticDecode"/> every one-token step writes at a device slot index (updated in place by its owner)
/// and returns the <b>full</b> buffers [B, H_kv, C, D], so shapes and addresses never change between steps; the
/// attention hides the columns not yet written with <see cref="StaticDecodeMask"/> [B, 1, 1, C].
/// </para>
/// </remarks>
public sealed class KeyValueCache : IDisposable
{
    private readonly List<(torch.Tensor Key, torch.Tensor Value)?> _layers = new();
    private readonly List<Buffer?> _buffers = new();   // growable storage behind _layers (no-grad appends)
    private bool _disposed;
    private long _staticCapacity;                       // C in static mode, 0 in the dynamic mode
    private torch.Tensor? _decodeSlot;                  // [1] int64, owned by the static decoder, not by the cache

    /// <summary>
    /// A cache in static mode with room for <paramref name="capacity"/> positions per layer (prompt + new tokens).
    /// Appending beyond it throws.
    /// </summary>
    internal static KeyValueCache CreateStatic(long capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        return new KeyValueCache { _staticCapacity = capacity };
    }

    /// <summary>C, the positions per layer of a static cache; 0 for a dynamic one.</summary>
    internal long StaticCapacity => _staticCapacity;

    /// <summary>
    /// The additive mask [B, 1, 1, C] that one-token steps of a static cache attend with (0 = visible, the dtype's
    /// minimum elsewhere), set by <see cref="BeginStaticDecode"/>; null before (and in the dynamic mode). Not owned.
    /// </summary>
    internal torch.Tensor? StaticDecodeMask { get; private set; }

    /// <summary>
    /// Switches a static cache from the prompt (written as in the dynamic mode) to one-token steps: each step writes
    /// its key / value at <paramref name="slot"/> ([1] int64 on the cache's device; its owner advances it in place)
    /// and gets the full buffers back. <paramref name="mask"/> is <see cref="StaticDecodeMask"/>. Neither is owned.
    /// </summary>
    internal void BeginStaticDecode(torch.Tensor slot, torch.Tensor mask)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_staticCapacity == 0) throw new InvalidOperationException("BeginStaticDecode: the cache is not static");
        _decodeSlot = slot;
        StaticDecodeMask = mask;
        for (int i = 0; i < _layers.Count; i++)
        {
            if (_buffers[i] is not { } buf) throw new InvalidOperationException($"BeginStaticDecode: layer {i} holds no prompt keys");
            if (_layers[i] is { } old)
            {
                old.Key.Dispose();
                old.Value.Dispose();
            }
            _layers[i] = (buf.Key.alias().DetachFromDisposeScope(), buf.Value.alias().DetachFromDisposeScope());   // [B, H_kv, C, D]
        }
    }

    /// <summary>
    /// Empties a static cache for the next prompt: the host-side fill and the decode slot / mask are forgotten, the
    /// buffers are kept (their old values stay but are never visible: the next prompt overwrites its positions and
    /// the decode mask hides the rest).
    /// </summary>
    internal void ResetStatic()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _decodeSlot = null;
        StaticDecodeMask = null;
        for (int i = 0; i < _layers.Count; i++)
        {
            if (_layers[i] is { } kv)
            {
                kv.Key.Dispose();
                kv.Value.Dispose();
            }
            _layers[i] = null;
            if (i < _buffers.Count && _buffers[i] is { } b) b.Filled = 0;
        }
    }

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
    public (torch.Tensor Key, torch.Tensor Value) Update(int layer, torch.Tensor key, torch.Tensor value) =>
        Update(layer, key, value, key.shape, value.shape);

    /// <summary>
    /// <see cref="Update(int, torch.Tensor, torch.Tensor)"/> with the shapes of <paramref name="key"/> and
    /// <paramref name="value"/> ([B, H_kv, T_new, D]) given by a caller that knows them on the host (the attention
    /// layers), so a decoding step reads no tensor metadata here. The caller guarantees they are the tensors' shapes.
    /// </summary>
    internal (torch.Tensor Key, torch.Tensor Value) Update(int layer, torch.Tensor key, torch.Tensor value, long[] keyShape, long[] valueShape)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (_layers.Count <= layer) _layers.Add(null);
        while (_buffers.Count <= layer) _buffers.Add(null);
        // Autograd off: no op records a graph, so the buffer copy gives what cat would (a key that requires grad,
        // e.g. a leaf, yields a result without grad either way); no per-layer requires_grad reads.
        if (_staticCapacity > 0 || !torch.is_grad_enabled()) return Append(layer, key, value, keyShape, valueShape);   // static: generation only
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
    // entry the view of its filled part [B, H_kv, T_past + T_new, D]. The buffer's shapes and fill are kept on the host
    // and the step's shapes come from the caller, so a step reads no metadata: two copies and two views. The dtype and
    // device are read when a buffer is made; a buffer is reused while the shapes match (keys of another dtype or device
    // than the buffer's would be converted by the copy, and the attention then rejects the mix with its queries).
    private (torch.Tensor Key, torch.Tensor Value) Append(int layer, torch.Tensor key, torch.Tensor value, long[] ks, long[] vs)
    {
        if (_decodeSlot is { } slot) return AppendAtSlot(layer, key, value, ks, slot);
        long past = _buffers[layer] is { } cur ? cur.Filled : _layers[layer] is { } old0 ? old0.Key.shape[2] : 0;
        long add = ks[2], total = past + add;
        if (_staticCapacity > 0 && total > _staticCapacity)
            throw new InvalidOperationException($"static KV cache: {total} positions do not fit its capacity {_staticCapacity} (layer {layer})");
        if (_buffers[layer] is not { } buf || buf.Capacity < total || !buf.Holds(ks, vs)
            || (_staticCapacity > 0 && (buf.Key.dtype != key.dtype || buf.Device.type != key.device.type || buf.Device.index != key.device.index)))
        {
            long capacity = _staticCapacity > 0 ? _staticCapacity : Math.Max(total, 2 * past);
            var device = key.device;
            // Static buffers start zeroed: their unwritten columns are masked out, and 0 · (garbage NaN) would not be 0.
            var kb = _staticCapacity > 0 ? torch.zeros([ks[0], ks[1], capacity, ks[3]], dtype: key.dtype, device: device)
                : torch.empty([ks[0], ks[1], capacity, ks[3]], dtype: key.dtype, device: device);   // [B, H_kv, C, D]
            var vb = _staticCapacity > 0 ? torch.zeros([vs[0], vs[1], capacity, vs[3]], dtype: value.dtype, device: device)
                : torch.empty([vs[0], vs[1], capacity, vs[3]], dtype: value.dtype, device: device);
            if (_layers[layer] is { } old)
            {
                kb.narrow(2, 0, past).copy_(old.Key).Dispose();
                vb.narrow(2, 0, past).copy_(old.Value).Dispose();
            }
            DropBuffer(layer);
            buf = new Buffer(kb.DetachFromDisposeScope(), vb.DetachFromDisposeScope(), ks, vs, capacity, device);
            _buffers[layer] = buf;
        }
        var slots = Positions(past, add, buf.Device);                                               // [T_new] int64
        buf.Key.index_copy_(2, slots, key);
        buf.Value.index_copy_(2, slots, value);
        var k = buf.Key.narrow(2, 0, total).DetachFromDisposeScope();
        var v = buf.Value.narrow(2, 0, total).DetachFromDisposeScope();
        buf.Filled = total;
        if (_layers[layer] is { } prev)
        {
            prev.Key.Dispose();
            prev.Value.Dispose();
        }
        _layers[layer] = (k, v);
        return (k, v);
    }

    // A one-token step of a static cache: key / value [B, H_kv, 1, D] written at the device slot, the full buffers
    // [B, H_kv, C, D] returned (the same tensors every step: nothing here depends on host state that a CUDA graph
    // replay would not update).
    private (torch.Tensor Key, torch.Tensor Value) AppendAtSlot(int layer, torch.Tensor key, torch.Tensor value, long[] ks, torch.Tensor slot)
    {
        if (ks[2] != 1) throw new InvalidOperationException($"static KV cache: a decode step appends one position, got {ks[2]} (layer {layer})");
        if (layer >= _buffers.Count || _buffers[layer] is not { } buf || _layers[layer] is not { } full)
            throw new InvalidOperationException($"static KV cache: layer {layer} has no prompt keys");
        buf.Key.index_copy_(2, slot, key);
        buf.Value.index_copy_(2, slot, value);
        return full;
    }

    // A layer's growable storage [B, H_kv, capacity, D] and the shapes it was made for (reused only for the same batch
    // rows, heads and head size).
    private sealed class Buffer(torch.Tensor key, torch.Tensor value, long[] keyShape, long[] valueShape, long capacity, torch.Device device)
    {
        public torch.Device Device { get; } = device;
        public torch.Tensor Key { get; } = key;
        public torch.Tensor Value { get; } = value;
        public long Capacity { get; } = capacity;
        public long Filled { get; set; }

        public bool Holds(long[] ks, long[] vs) =>
            ks[0] == keyShape[0] && ks[1] == keyShape[1] && ks[3] == keyShape[3] && vs[0] == valueShape[0] && vs[1] == valueShape[1]
            && vs[3] == valueShape[3];
    }

    /// <summary>
    /// The device of each layer's parameters, recorded by the forward that first ran with this cache and reused by the
    /// later steps of the same generation (the cache's tensors live on those devices, so the placement is fixed while
    /// it is in use); null until recorded.
    /// </summary>
    internal torch.Device?[]? LayerDevices { get; set; }

    // The positions past … past + count − 1 as an int64 index on the device: the slots a step writes with index_copy_
    // (one call per key / value instead of a narrow view, its copy and its disposal). Made once per step and device
    // and shared by the layers, which all append at the same positions.
    private torch.Tensor Positions(long past, long count, torch.Device device)
    {
        if (_positions is { } p && _positionsFrom == past && _positionsCount == count
            && _positionsDevice is { } d && d.type == device.type && d.index == device.index) return p;
        _positions?.Dispose();
        _positions = torch.arange(HeldScalars.Of(past), HeldScalars.Of(past + count), dtype: torch.ScalarType.Int64, device: device).DetachFromDisposeScope();
        (_positionsFrom, _positionsCount, _positionsDevice) = (past, count, device);
        return _positions;
    }

    private torch.Tensor? _positions;
    private long _positionsFrom, _positionsCount;
    private torch.Device? _positionsDevice;

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
        if (_staticCapacity > 0) throw new NotSupportedException("ReorderCache: a static KV cache keeps its rows in place (beam search uses the dynamic cache)");
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
        if (_staticCapacity > 0) throw new NotSupportedException("Crop: not supported on a static KV cache");
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
        _positions?.Dispose();
        _positions = null;
        _decodeSlot = null;
        StaticDecodeMask = null;
    }
}
