using Peft.Core;
using Peft.Core.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Generation;

/// <summary>
/// The fixed-address tensors of static-cache decoding for one (model, batch rows, capacity, device): a static
/// <see cref="KeyValueCache"/> of capacity C, the step's input ids [B, 1] and position ids [B, 1] (int64), the cache
/// slot [1] (int64) every layer writes at, the additive attention mask [B, 1, 1, C] (model dtype), and, on CUDA, the
/// captured graph of one decoding step with its float32 logits [B, V]. HF equivalent: <c>StaticCache</c> with
/// <c>torch.compile(mode="reduce-overhead")</c>.
/// </summary>
/// <remarks>
/// <para>Per generation: <see cref="Prefill"/> runs the prompt through the normal (eager) forward into the static
/// cache, <see cref="StartDecode"/> fills the mask, slot and positions from the prompt, then each
/// <see cref="Decode"/> copies the last token into the ids buffer, runs the step (a graph replay, or the same C#
/// forward eagerly on the CPU / when no graph is used) and advances slot and positions in place. The step itself
/// first unmasks the slot's column, so a replay does all of it: about five native calls per token besides the
/// sampling.</para>
/// <para>Reused across generations by <see cref="StaticDecodeHolder"/> (the next prompt overwrites the buffers); owns
/// all its tensors and the graph; <see cref="Dispose"/> frees them.</para>
/// </remarks>
internal sealed class StaticDecodeState : IDisposable
{
    private readonly Tensor _ids;            // [B, 1] int64
    private readonly Tensor _positions;      // [B, 1] int64
    private readonly Tensor _slot;           // [1] int64
    private Tensor? _mask;                   // [B, 1, 1, C] in the model's dtype, made at the first StartDecode
    private Tensor? _logits;                 // [B, V] float32: the captured step's output
    private CudaGraph? _graph;
    private bool _graphTried;

    /// <summary>Creates the buffers for <paramref name="rows"/> rows and <paramref name="capacity"/> positions on <paramref name="device"/>.</summary>
    public StaticDecodeState(long rows, long capacity, Device device, bool useGraph)
    {
        Rows = rows;
        Capacity = capacity;
        Device = device;
        UseGraph = useGraph && device.type == DeviceType.CUDA;
        Cache = KeyValueCache.CreateStatic(capacity);
        _ids = zeros(rows, 1, dtype: ScalarType.Int64, device: device).DetachFromDisposeScope();
        _positions = zeros(rows, 1, dtype: ScalarType.Int64, device: device).DetachFromDisposeScope();
        _slot = zeros(1, dtype: ScalarType.Int64, device: device).DetachFromDisposeScope();
    }

    /// <summary>B.</summary>
    public long Rows { get; }

    /// <summary>C, the cache positions (prompt + new tokens, rounded up).</summary>
    public long Capacity { get; }

    /// <summary>The device of every buffer.</summary>
    public Device Device { get; }

    /// <summary>Whether decode steps are captured into a CUDA graph (CUDA only; turned off when a capture fails).</summary>
    public bool UseGraph { get; private set; }

    /// <summary>Why the capture failed (then steps run eagerly), or null.</summary>
    public string? GraphFailure { get; private set; }

    /// <summary>True once a graph is captured and replayed for the steps.</summary>
    public bool Captured => _graph is not null;

    /// <summary>The static cache (owned).</summary>
    public KeyValueCache Cache { get; }

    /// <summary>
    /// Runs the prompt (<paramref name="input"/> with T &gt; 1 new tokens, normal eager forward) into the emptied
    /// static cache and returns the model's output (its <see cref="ModelOutput.PastKeyValues"/> is <see cref="Cache"/>).
    /// </summary>
    public ModelOutput Prefill(Func<ModelInput, ModelOutput> forward, ModelInput input)
    {
        Cache.ResetStatic();
        return forward(input with { PastKeyValues = Cache, UseCache = true });
    }

    /// <summary>
    /// After <see cref="Prefill"/> of <paramref name="promptLength"/> tokens: the mask shows the prompt's tokens
    /// (<paramref name="promptMask"/> [B, T], null = all), the slot is T, and the positions are the prompt's last
    /// <paramref name="lastPositions"/> [B|1, 1] + 1.
    /// </summary>
    public void StartDecode(Tensor? promptMask, long promptLength, Tensor lastPositions)
    {
        if (promptLength >= Capacity) throw new InvalidOperationException($"static decoding: the prompt ({promptLength}) fills the cache capacity {Capacity}");
        using var scope = NewDisposeScope();
        var dtype = Cache[0] is { } kv ? kv.Key.dtype : throw new InvalidOperationException("static decoding: the prompt left no keys in the cache");
        if (_mask is null || _mask.dtype != dtype)
        {
            _mask?.Dispose();
            _mask = empty(Rows, 1, 1, Capacity, dtype: dtype, device: Device).DetachFromDisposeScope();   // [B, 1, 1, C]
        }
        _mask.fill_(HeldScalars.Of(Models.ModelOps.MaskMin(dtype)));
        var prompt = _mask.narrow(3, 0, promptLength);                                                     // [B, 1, 1, T]
        prompt.fill_(HeldScalars.Of(0.0));
        if (promptMask is not null)
            prompt.masked_fill_(promptMask.to(Device).eq(HeldScalars.Of(0)).view(Rows, 1, 1, promptLength), HeldScalars.Of(Models.ModelOps.MaskMin(dtype)));
        _slot.fill_(HeldScalars.Of(promptLength));
        _positions.copy_(lastPositions.add(HeldScalars.Of(1L), HeldScalars.One));
        Cache.BeginStaticDecode(_slot, _mask);
    }

    /// <summary>
    /// One decoding step for the new tokens <paramref name="lastTokens"/> [B, 1]: float32 logits [B, V] in the
    /// caller's dispose scope (with a graph: a handle to the graph's output, overwritten by the next step).
    /// <paramref name="forward"/> is the model's forward; it runs eagerly, or once at capture.
    /// </summary>
    public Tensor Decode(Func<ModelInput, ModelOutput> forward, Tensor lastTokens)
    {
        _ids.copy_(lastTokens);
        Tensor result;
        if (UseGraph && !_graphTried) result = CaptureAndRun(forward);
        else if (_graph is not null)
        {
            _graph.Replay();
            result = _logits!.alias();
        }
        else result = Step(forward);
        _positions.add_(HeldScalars.Of(1L), HeldScalars.One);
        _slot.add_(HeldScalars.Of(1L), HeldScalars.One);
        return result;
    }

    // The step a graph captures: unmask the slot's column, run the model on the static ids / positions / cache, keep
    // the last position's float32 logits [B, V].
    private Tensor Step(Func<ModelInput, ModelOutput> forward)
    {
        using var scope = NewDisposeScope();
        _mask!.index_fill_(3, _slot, HeldScalars.Of(0.0));
        var output = forward(new ModelInput { InputIds = _ids, PositionIds = _positions, PastKeyValues = Cache, UseCache = true, LogitsToKeep = 1 });
        var logits = output.Logits ?? throw new InvalidOperationException("static decoding: the model returned no Logits");
        return logits.select(1, 0).to_type(ScalarType.Float32).MoveToOuterDisposeScope();   // [B, V]
    }

    private Tensor CaptureAndRun(Func<ModelInput, ModelOutput> forward)
    {
        _graphTried = true;
        try
        {
            _graph = CudaGraph.Capture(Device, () =>
            {
                _logits?.Dispose();
                _logits = Step(forward).DetachFromDisposeScope();
            });
            _graph.Replay();
            return _logits!.alias();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Any failure of the capture falls back to the eager step (which raises again if the step itself is broken).
            _graph?.Dispose();
            _graph = null;
            _logits?.Dispose();
            _logits = null;
            UseGraph = false;
            GraphFailure = $"{e.GetType().Name}: {e.Message}";
            return Step(forward);                                  // the step is idempotent: same slot, same values
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _graph?.Dispose();
        _graph = null;
        _logits?.Dispose();
        _logits = null;
        _mask?.Dispose();
        _mask = null;
        _ids.Dispose();
        _positions.Dispose();
        _slot.Dispose();
        Cache.Dispose();
    }
}
