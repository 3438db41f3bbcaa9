using Peft.Core.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Generation;

/// <summary>
/// Keeps one model's <see cref="StaticDecodeState"/> (static KV cache, step buffers and captured CUDA graph) between
/// <c>Generate</c> calls, so the next call with the same batch rows, capacity bucket and device reuses them instead of
/// allocating and capturing again (capturing and instantiating costs milliseconds).
/// </summary>
/// <remarks>
/// <para>Lifetime: owned by the <see cref="PreTrainedModel"/>; freed by <see cref="PreTrainedModel.ReleaseGenerationCaches"/>
/// or when the model is disposed. Dropped automatically when the model could compute differently: a graph bakes in
/// the parameter tensors' addresses and the C# control flow of one forward, so the kept state is discarded when the
/// model's parameters or buffers are other tensor objects than at capture (replaced, moved, cast, adapters added or
/// removed), when its training flag differs, or when a tuner layer's active / disabled / merged adapters differ.
/// In-place weight updates (an optimizer step, merging) need nothing: replays read the weights' current values.</para>
/// <para>A state in use by one generation is not lent to another (a concurrent or nested call gets a fresh state of
/// its own, freed when it ends). A failed capture is remembered (one warning on stderr naming the reason) and later
/// generations of this model decode eagerly.</para>
/// </remarks>
internal sealed class StaticDecodeHolder : IDisposable
{
    private readonly object _gate = new();
    private StaticDecodeState? _state;
    private bool _lent;
    private object[] _tensors = [];
    private bool _training;
    private string _tuners = "";
    private bool _known;

    /// <summary>The state kept for the next generation (null: none); for tests.</summary>
    internal StaticDecodeState? Kept
    {
        get { lock (_gate) return _state; }
    }

    /// <summary>Why graph capture failed for this model (later generations decode eagerly), or null.</summary>
    public string? GraphFailure { get; private set; }

    /// <summary>Whether the model's parameters live on more than one device (static decoding then does not apply); refreshed with the fingerprint.</summary>
    public Device[] ParameterDevices { get; private set; } = [];

    /// <summary>
    /// Brings the fingerprint up to date with <paramref name="model"/>; when it changed, the kept state (and a
    /// remembered capture failure) is dropped.
    /// </summary>
    public void Refresh(nn.Module model)
    {
        var tensors = model.parameters().Cast<object>().Concat(model.buffers()).ToArray();
        string tuners = string.Join(";", model.modules().OfType<ITunerLayer>().Select(t =>
            $"{t.DisableAdapters}|{string.Join(",", t.ActiveAdapters)}|{string.Join(",", t.MergedAdapters)}"));
        lock (_gate)
        {
            bool same = _known && _training == model.training && _tuners == tuners && _tensors.Length == tensors.Length
                        && _tensors.Zip(tensors).All(p => ReferenceEquals(p.First, p.Second));
            if (same) return;
            if (!_lent) DropState();
            else _state = null;                                  // the borrower frees it when done (see Release)
            (_tensors, _training, _tuners, _known) = (tensors, model.training, tuners, true);
            GraphFailure = null;
            ParameterDevices = model.parameters().Select(p => p.device).DistinctBy(d => (d.type, d.index)).ToArray();
        }
    }

    /// <summary>
    /// A state for one generation of <paramref name="rows"/> rows and <paramref name="capacity"/> positions on
    /// <paramref name="device"/>: the kept one when it fits and is free, else a new one (kept for later calls unless
    /// the kept one is busy). Give it back with <see cref="Lease.Dispose"/>.
    /// </summary>
    public Lease Acquire(long rows, long capacity, Device device, bool useGraph)
    {
        lock (_gate)
        {
            if (_lent) return new Lease(this, new StaticDecodeState(rows, capacity, device, useGraph), owned: true);
            if (_state is not { } s || s.Rows != rows || s.Capacity != capacity || s.Device.type != device.type
                || s.Device.index != device.index || s.UseGraph != (useGraph && device.type == DeviceType.CUDA))
            {
                DropState();
                _state = new StaticDecodeState(rows, capacity, device, useGraph);
            }
            _lent = true;
            return new Lease(this, _state, owned: false);
        }
    }

    private void Release(StaticDecodeState state, bool owned)
    {
        lock (_gate)
        {
            if (state.GraphFailure is { } why && GraphFailure is null)
            {
                GraphFailure = why;
                Console.Error.WriteLine($"warning: Peft.Transformers: CUDA graph capture of the decoding step failed; this model decodes eagerly from now on ({why})");
            }
            if (owned) state.Dispose();
            else
            {
                _lent = false;
                if (!ReferenceEquals(state, _state) || state.GraphFailure is not null) state.Dispose();   // dropped while lent, or failed
                if (state.GraphFailure is not null && ReferenceEquals(state, _state)) _state = null;
            }
        }
    }

    private void DropState()
    {
        _state?.Dispose();
        _state = null;
    }

    /// <summary>Frees the kept state (a state lent out is freed when its generation ends).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_lent) _state = null;
            else DropState();
            _known = false;
            _tensors = [];
        }
    }

    /// <summary>A state lent to one generation; disposing gives it back (or frees it when it was not kept).</summary>
    internal sealed class Lease(StaticDecodeHolder holder, StaticDecodeState state, bool owned) : IDisposable
    {
        private bool _done;

        /// <summary>The lent state.</summary>
        public StaticDecodeState State { get; } = state;

        /// <inheritdoc />
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            holder.Release(State, owned);
        }
    }
}
