using static TorchSharp.torch;

namespace Peft.Core.Torch;

/// <summary>
/// Ownership of the tensors a TorchSharp custom autograd function's backward sees and returns (every custom node in
/// the project ends its backward with <see cref="Finish"/>). TorchSharp wraps each
/// incoming gradient in a new <see cref="Tensor"/> that owns a native reference, and the engine copies the returned
/// gradients only after <c>backward</c> has returned. On CUDA the engine calls <c>backward</c> on its device thread,
/// where no dispose scope is open, so both sets of wrappers would keep their device memory until the .NET finalizer
/// runs (in a training loop: gigabytes per step, since the loop allocates too little managed memory for a GC).
/// <see cref="Finish"/> disposes the incoming gradients at once (TorchSharp does not read them after
/// <c>backward</c>) and keeps the returned ones until the next custom backward on the same thread, by which time the
/// engine has copied them, so at most one node's gradients stay referenced per thread.
/// </summary>
internal static class BackwardHandOver
{
    [ThreadStatic] private static List<Tensor>? _returned;

    /// <summary>
    /// Call as the last step of a custom <c>backward</c>: disposes the previous call's returned gradients on this
    /// thread and <paramref name="incoming"/> (the grad_output wrappers; they must not be among
    /// <paramref name="result"/>), remembers the non-null entries of <paramref name="result"/> and returns it.
    /// </summary>
    public static List<Tensor> Finish(List<Tensor> result, params Tensor?[] incoming)
    {
        ArgumentNullException.ThrowIfNull(result);
        ReleasePrevious();
        foreach (var t in incoming)
            if (t is not null && !result.Any(r => ReferenceEquals(r, t))) t.Dispose();
        _returned = result.Where(t => t is not null).ToList();
        return result;
    }

    /// <summary>Disposes the gradients the last <see cref="Finish"/> on this thread handed to the engine.</summary>
    public static void ReleasePrevious()
    {
        var previous = _returned;
        _returned = null;
        if (previous is null) return;
        foreach (var t in previous) t.Dispose();
    }
}
