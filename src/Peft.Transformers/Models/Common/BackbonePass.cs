using Peft.Core;
using Peft.Core.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Models;

/// <summary>Default position ids [B, T] of the new tokens when the caller passes none (architecture-specific rule).</summary>
internal delegate Tensor DefaultPositions(Tensor? attentionMask, long batch, long queryLen, long pastLen, Device device);

/// <summary>
/// One forward pass through a transformer stack: the part GPT-2, OPT, the Llama family and BERT share (the body of
/// HF's <c>GPT2Model</c> / <c>OPTDecoder</c> / <c>LlamaModel</c> / <c>BertEncoder</c> forward between the embeddings
/// and the final norm). It owns the KV-cache rule (the given cache, or a new one when use_cache), the past length,
/// default position ids, the causal (optionally sliding-window) or padding masks, the layer loop with one dispose
/// scope per layer, output_hidden_states, and gradient checkpointing. The architecture supplies its embeddings,
/// layers and final norm. Layers may live on different devices (a <c>device_map</c> placement,
/// <see cref="DevicePlacement"/>): before each layer the hidden states, its mask and the rotary cos/sin are moved to the
/// device of the layer's parameters (pipeline-style, no overlap; a no-op when they already are there).
/// </summary>
/// <remarks>
/// Created inside the model's forward dispose scope; every tensor it creates lives in that scope (the caller moves
/// the output out with <see cref="ModelOps.MoveOut"/>).
/// </remarks>
internal sealed class BackbonePass
{
    private readonly ModelInput _input;
    private readonly List<Tensor>? _hidden;
    private Tensor?[] _masks = [];
    private readonly List<(Tensor Source, Device Device, Tensor Copy)> _moved = [];

    /// <summary>Starts a pass: validates nothing beyond the cache rule (the caller has run <c>CausalHeads.BatchShape</c>).</summary>
    /// <param name="input">The forward's input.</param>
    /// <param name="batch">B.</param>
    /// <param name="queryLen">T, the new tokens.</param>
    /// <param name="checkpointing">
    /// Recompute each layer in backward (the model's <c>CheckpointsLayers</c>). Caching is then off, as in HF: use_cache
    /// creates no cache, and a given cache is read (its prefix attended to) but not extended.
    /// </param>
    /// <param name="createCache">Whether use_cache creates a cache when none is given (false for encoders, which only read a prefix).</param>
    public BackbonePass(ModelInput input, long batch, long queryLen, bool checkpointing, bool createCache = true)
    {
        _input = input;
        Batch = batch;
        QueryLength = queryLen;
        Checkpointing = checkpointing;
        Cache = input.PastKeyValues ?? (createCache && input.UseCache && !checkpointing ? new KeyValueCache() : null);
        PastLength = Cache?.GetSeqLength() ?? 0;
        _hidden = input.OutputHiddenStates ? [] : null;
    }

    /// <summary>Whether the layers run through <see cref="LayerCheckpoint"/>.</summary>
    public bool Checkpointing { get; }

    /// <summary>B.</summary>
    public long Batch { get; }

    /// <summary>T, the number of new tokens.</summary>
    public long QueryLength { get; }

    /// <summary>The cache layers read from and append to, or null (returned as <see cref="ModelOutput.PastKeyValues"/>).</summary>
    public KeyValueCache? Cache { get; }

    /// <summary>Positions already in the cache.</summary>
    public long PastLength { get; }

    /// <summary>position_ids [B, T] on <paramref name="device"/>: the caller's, else the architecture's default rule.</summary>
    public Tensor PositionIds(Device device, DefaultPositions rule) =>
        _input.PositionIds?.to(device) ?? rule(_input.AttentionMask, Batch, QueryLength, PastLength, device);

    /// <summary>
    /// Builds the causal mask of every layer ([B|1, 1, T, past + T] or null): one full mask shared by the layers
    /// without a window, one per distinct sliding window (<paramref name="slidingWindowOf"/>, Mistral / Qwen2).
    /// </summary>
    /// <remarks>
    /// A one-token step over a static cache (<see cref="KeyValueCache.StaticDecodeMask"/>, CUDA-graph decoding) uses that
    /// mask [B, 1, 1, C] for every layer instead: it is updated in place by the decoder, so this pass builds nothing
    /// and reads no host state a graph replay would not update. Sliding-window layers are not supported there.
    /// </remarks>
    public void UseCausalMasks(int layerCount, ScalarType dtype, Device device, Func<int, int?>? slidingWindowOf = null)
    {
        var windows = Enumerable.Range(0, layerCount).Select(i => slidingWindowOf?.Invoke(i)).ToArray();
        if (QueryLength == 1 && Cache?.StaticDecodeMask is { } staticMask)
        {
            if (windows.Any(w => w is not null)) throw new NotSupportedException("static KV cache: sliding-window attention layers are not supported; use cache_implementation \"dynamic\"");
            _masks = Enumerable.Repeat<Tensor?>(staticMask, layerCount).ToArray();
            return;
        }
        var byWindow = new Dictionary<int, Tensor?>();
        Tensor? full = null;
        bool fullBuilt = false;
        _masks = new Tensor?[layerCount];
        for (int i = 0; i < layerCount; i++)
        {
            if (windows[i] is { } w)
            {
                if (!byWindow.TryGetValue(w, out var m)) byWindow[w] = m = ModelOps.CausalMask(_input.AttentionMask, Batch, QueryLength, PastLength, dtype, device, w);
                _masks[i] = m;
            }
            else
            {
                if (!fullBuilt) (full, fullBuilt) = (ModelOps.CausalMask(_input.AttentionMask, Batch, QueryLength, PastLength, dtype, device), true);
                _masks[i] = full;
            }
        }
    }

    /// <summary>Uses one bidirectional padding mask [B, 1, 1, past + T] (or none) for every layer (BERT).</summary>
    public void UsePaddingMask(int layerCount, ScalarType dtype, Device device)
    {
        var m = ModelOps.PaddingMask(_input.AttentionMask, dtype, device);
        _masks = Enumerable.Repeat(m, layerCount).ToArray();
    }

    /// <summary>
    /// Runs <paramref name="layers"/> in order on <paramref name="hidden"/> [B, T, hidden], each in its own dispose
    /// scope, recording hidden states when asked. <paramref name="rope"/> is the rotary (cos, sin) of the Llama family.
    /// Call a mask method first.
    /// </summary>
    public Tensor RunLayers(IEnumerable<ITransformerLayer> layers, Tensor hidden, (Tensor Cos, Tensor Sin)? rope = null)
    {
        _hidden?.Add(hidden);
        int i = 0;
        var at = hidden.device;                  // where hidden is, tracked on the host (a layer's output stays on its device)
        var devices = LayerDevices(layers);
        foreach (var layer in layers)
        {
            if (i >= _masks.Length) throw new InvalidOperationException($"BackbonePass: masks were built for {_masks.Length} layers, the stack has more.");
            var device = devices[i] ?? at;
            if (!ModelOps.SameDevice(at, device)) (hidden, at) = (hidden.to(device), device);
            var inputs = new LayerInputs(i, On(_masks[i], device), On(rope?.Cos, device), On(rope?.Sin, device), Cache, Batch, QueryLength);
            Tensor next;
            using (NewDisposeScope())
                next = (Checkpointing ? LayerCheckpoint.Forward(layer, hidden, inputs) : layer.Forward(hidden, inputs)).MoveToOuterDisposeScope();
            // The previous layer's output is read by no one else unless recorded (output_hidden_states): release its
            // handle now, as Python's refcount does, instead of at the end of the forward (12 × [B, T, H] per OPT-125m
            // eval forward; under autograd the graph keeps what backward needs). Never the caller's input.
            if (i > 0 && _hidden is null && !ReferenceEquals(hidden, next)) hidden.Dispose();
            hidden = next;
            _hidden?.Add(hidden);
            i++;
        }
        TrimAfterInference(at);
        return hidden;
    }

    // A CPU inference forward over several tokens frees hundreds of MB of layer activations; glibc keeps those pages
    // resident as free heap and, as later forwards place their blocks differently, the free part grew by 10-40 MB per
    // OPT-125m forward in some processes (merged_forward peak 1545 MB in most runs, 1681-2077 MB in others; Python
    // 1638). malloc_trim after the layers returns them: peak 1479 MB in every run, speed within the noise
    // (bench/README.md). Not under autograd (the activations are still held for backward; the training step trims
    // after it), not for one-token decoding steps (little to return, many calls). PEFT_MALLOC_TRIM=0 turns it off.
    private void TrimAfterInference(Device device)
    {
        if (device.type == DeviceType.CPU && QueryLength > 1 && !is_grad_enabled() && NativeHeap.TrimAtSteps) NativeHeap.Trim();
    }

    // The device of each layer's parameters (null: none). Read once per generation: the first forward with a cache
    // records them in it, the later steps (same cache, so the same placement: its keys and values live there) reuse them.
    private Device?[] LayerDevices(IEnumerable<ITransformerLayer> layers)
    {
        if (Cache?.LayerDevices is { } known && known.Length == layers.Count()) return known;
        var devices = layers.Select(l => ModelOps.DeviceOf(l.parameters())).ToArray();
        if (Cache is not null) Cache.LayerDevices = devices;
        return devices;
    }

    /// <summary><paramref name="x"/> moved to the device of <paramref name="module"/>'s parameters (the final norm / head of a split model).</summary>
    public static Tensor ToDeviceOf(TorchSharp.torch.nn.Module module, Tensor x) =>
        ModelOps.DeviceOf(module.parameters()) is { } d && !ModelOps.SameDevice(x.device, d) ? x.to(d) : x;

    // The per-pass copy of a shared input (mask, cos, sin) on another device, made once per device; the input itself
    // when it is there already. Remembered per (input, device), so later layers read no tensor metadata.
    private Tensor? On(Tensor? t, Device device)
    {
        if (t is null) return null;
        foreach (var (source, dev, copy) in _moved)
            if (ReferenceEquals(source, t) && ModelOps.SameDevice(dev, device)) return copy;
        var moved = ModelOps.SameDevice(t.device, device) ? t : t.to(device);
        _moved.Add((t, device, moved));
        return moved;
    }

    /// <summary>
    /// The backbone output: <paramref name="lastHidden"/> (after the final norm) replaces the last recorded hidden
    /// state, as HF does. Not moved out of the scope: the caller does that once.
    /// </summary>
    public ModelOutput Output(Tensor lastHidden, Tensor? pooled = null)
    {
        if (_hidden is { Count: > 0 }) _hidden[^1] = lastHidden;
        return new ModelOutput { LastHiddenState = lastHidden, PoolerOutput = pooled, HiddenStates = _hidden, PastKeyValues = Cache };
    }
}
