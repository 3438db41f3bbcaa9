using static TorchSharp.torch;

namespace Peft.Transformers.Models;

/// <summary>
/// Frees an intermediate tensor at its last use, as Python's reference counting does in HF's forward, instead of at
/// the end of the enclosing dispose scope. Holding every intermediate of a layer until the layer ends kept ~60 MB of
/// OPT-125m activations (8 × 128) alive per layer and left glibc's heap fragmented by them: peak RSS of a no-grad
/// forward was ~200 MB above Python's (bench/README.md, "CPU, 2026-12-01"). Disposing a handle only drops this
/// reference: storage still used by a view, by the autograd graph (saved for backward) or by another handle stays
/// alive, so releasing is safe whenever the handle itself is not used again.
/// </summary>
internal static class Release
{
    /// <summary>
    /// Disposes <paramref name="dead"/> unless it is null or the same object as <paramref name="keep"/> or
    /// <paramref name="keep2"/> (a module may return its input, e.g. an identity or a norm-less path).
    /// </summary>
    public static void Free(Tensor? dead, Tensor? keep = null, Tensor? keep2 = null)
    {
        if (dead is null || ReferenceEquals(dead, keep) || ReferenceEquals(dead, keep2)) return;
        dead.Dispose();
    }
}
