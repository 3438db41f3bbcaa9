using Peft.Core;
using TorchSharp;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Generation;

/// <summary>
/// Runs the model for one decoding step and returns the last position's logits. With a cache, only the tokens not
/// yet consumed are fed (the prompt at the first step, then one token per step); without one (or when the model
/// returns no cache) the whole sequence is fed every step. Position ids follow HF
/// <c>prepare_inputs_for_generation</c>: <c>cumsum(mask) − 1</c>, padding set to 1. The stepper counts the tokens it
/// has fed itself instead of reading the cache length, because a model may keep extra positions in its cache (prompt
/// learning's virtual tokens or prefixes); a model implementing <see cref="IGenerationStepHook"/> (a
/// <see cref="PeftModel"/>) gets each step's inputs through it, so it can prepend them.
/// <para>
/// Without padding (<see cref="Forward(Tensor, Tensor?)"/> given no mask) the positions are <c>arange(past, total)</c>, views of one
/// arange made per generation, and the model gets no attention mask (HF drops an all-ones mask for SDPA as well): no
/// mask or position tensors are computed per step.
/// </para>
/// <para>
/// With a <see cref="StaticDecodeState"/> (static-cache decoding, see <see cref="StaticDecoding"/>) the prompt runs as
/// above into the state's static cache, and every later step goes through the state: the last token is copied into its
/// fixed ids buffer and the step is a CUDA-graph replay (or the same forward run eagerly). The state is not owned.
/// </para>
/// </summary>
internal sealed class ModelStepper(nn.Module<ModelInput, ModelOutput> model, bool useCache, StaticDecodeState? staticState = null) : IDisposable
{
    private KeyValueCache? _cache;
    private Tensor? _arange;                                      // [1, capacity] int64 on the ids' device (mask-free steps)
    private long _arangeLength;                                   // its capacity, kept on the host
    private long _consumed;
    private bool _first = true;

    /// <summary>True while the model keeps keys/values between steps.</summary>
    public bool Caching => _cache is not null;

    /// <summary>
    /// Feeds <paramref name="ids"/> [N, T] with <paramref name="mask"/> [N, T] (null: no padding in any row);
    /// returns float32 logits [N, V] of the last position, in the caller's dispose scope.
    /// </summary>
    public Tensor Forward(Tensor ids, Tensor? mask) => Forward(ids, mask, null);

    /// <summary><see cref="Forward(Tensor, Tensor?)"/> with the ids' [N, T] given by a caller that keeps them on the host.</summary>
    public Tensor Forward(Tensor ids, Tensor? mask, (long Rows, long Total)? shape)
    {
        var (rows, total) = shape ?? (ids.shape[0], ids.shape[1]);
        long past = _cache is null && staticState is null ? 0 : _consumed;
        if (past >= total) throw new InvalidOperationException($"the cache holds {past} tokens of the sequence but it has only {total}");
        using var scope = NewDisposeScope();
        if (staticState is { } decoding && past > 0)
        {
            if (total != past + 1) throw new InvalidOperationException($"static decoding feeds one token per step; the sequence grew from {past} to {total}");
            _consumed = total;
            return decoding.Decode(model.forward, ids.narrow(1, past, 1)).MoveToOuterDisposeScope();   // [N, V]
        }
        var newIds = past == 0 ? ids : ids.narrow(1, past, total - past);         // [N, T_new]
        Tensor positions;
        if (mask is null)
        {
            positions = Arange(total, ids).narrow(1, past, total - past);                   // [1, T_new]
            if (rows != 1) positions = positions.expand(rows, total - past);               // [N, T_new]
        }
        else
        {
            positions = mask.cumsum(-1).sub(HeldScalars.Of(1));
            positions = positions.masked_fill(mask.eq(HeldScalars.Of(0)), HeldScalars.Of(1));
            if (past > 0) positions = positions.narrow(1, past, total - past);    // [N, T_new]
        }
        var input = new ModelInput
        {
            InputIds = newIds,
            AttentionMask = mask,
            PositionIds = positions,
            PastKeyValues = _cache,
            UseCache = useCache,
            LogitsToKeep = 1,                                      // only the last position is read (HF generate does the same)
        };
        if (staticState is { } prefill)
        {
            var first = prefill.Prefill(model.forward, input);
            prefill.StartDecode(mask, total, positions.narrow(1, total - 1, 1));                // positions [N|1, 1] of the last prompt token
            _consumed = total;
            return LastLogits(first.Logits, rows);
        }
        var output = model is IGenerationStepHook hook ? hook.ForwardGenerationStep(input) : model.forward(input);
        if (_first)
        {
            _first = false;
            if (useCache) _cache = output.PastKeyValues;          // null: the model has no cache, recompute every step
        }
        if (output.PastKeyValues is { } other && !ReferenceEquals(other, _cache))
        {
            other.Dispose();                                       // a cache the model made for this step only (no caching)
        }
        if (_cache is not null) _consumed = total;
        return LastLogits(output.Logits, rows);
    }

    // The last position's logits [N, V] as float32, moved to the caller's scope; checks the model's output shape.
    private Tensor LastLogits(Tensor? modelLogits, long rows)
    {
        var logits = modelLogits ?? throw new InvalidOperationException($"{model.GetType().Name}.forward returned no Logits");
        var ls = logits.shape;
        if (ls.Length != 3 || ls[0] != rows)
            throw new InvalidOperationException($"{model.GetType().Name}.forward returned logits of shape [{string.Join(", ", ls)}], expected [{rows}, T, V]");
        // float32 as HF (a view when the model computes float32 logits: the step's logits are not used again)
        return logits.select(1, ls[1] - 1).to_type(ScalarType.Float32).MoveToOuterDisposeScope();   // [N, V]
    }

    // [[0, 1, 2, ...]] on the device, long enough for total positions (grown by doubling), made once per generation.
    private Tensor Arange(long total, Tensor ids)
    {
        if (_arange is { } table && _arangeLength >= total) return table;
        _arange?.Dispose();
        _arangeLength = Math.Max(total, Math.Max(64, 2 * _arangeLength));
        _arange = arange(HeldScalars.Of(_arangeLength), dtype: ScalarType.Int64, device: ids.device).unsqueeze(0).DetachFromDisposeScope();   // [1, C]
        return _arange;
    }

    /// <summary>Reorders the cached rows (beam search): row i becomes row <paramref name="index"/>[i].</summary>
    public void Reorder(Tensor index) => _cache?.ReorderCache(index);

    /// <inheritdoc />
    public void Dispose()
    {
        _arange?.Dispose();
        _arange = null;
        _cache?.Dispose();
        _cache = null;
    }
}
