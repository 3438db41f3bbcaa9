using static TorchSharp.torch;

namespace Peft.Transformers.Models;

/// <summary>
/// Gradients a custom autograd node's backward returned, held until the node that consumes them has run. TorchSharp
/// wraps what a custom backward returns in a managed handle registered in the dispose scope of the thread that runs
/// backward (the caller's step scope on the CPU; none on a CUDA device thread), so without a handoff the buffer lives
/// until that scope ends — through the rest of backward and the optimizer step — where torch frees it as soon as the
/// next node has used it. <see cref="GradientReleaseFunction"/> placed upstream of the consumer disposes the handles
/// here when its own backward runs, i.e. after the consumer's. Disposing a handle only drops this reference: autograd
/// keeps the buffer for as long as it still needs it.
/// </summary>
internal sealed class GradientHandoff : IDisposable
{
    private readonly object _gate = new();
    private readonly List<Tensor> _held = new();

    /// <summary>Takes over <paramref name="grad"/>'s handle (it may also stay registered in a dispose scope: disposing twice is harmless).</summary>
    public void Hold(Tensor grad)
    {
        lock (_gate) _held.Add(grad);
    }

    /// <summary>The number of handles held now (tests).</summary>
    public int Count
    {
        get
        {
            lock (_gate) return _held.Count;
        }
    }

    /// <summary>Disposes the held handles (idempotent).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var t in _held) t.Dispose();
            _held.Clear();
        }
    }
}
