namespace Peft.Core.Torch;

/// <summary>
/// Whether the code running on this thread may read device values on the host to pick a faster path. Inside
/// <see cref="Forbid"/> (a CUDA-graph capture and the eager runs that must match it) it may not: a host read cannot be
/// captured, and a path picked from one batch's values would be replayed for every later batch. HF skips the same
/// checks while tracing (<c>_ignore_causal_mask_sdpa</c> under <c>torch.compile</c>).
/// </summary>
internal static class HostReads
{
    [ThreadStatic] private static int t_forbidden;

    /// <summary>True outside every <see cref="Forbid"/> scope.</summary>
    public static bool Allowed => t_forbidden == 0;

    /// <summary>Forbids host reads on this thread until the returned scope is disposed (scopes nest).</summary>
    public static IDisposable Forbid()
    {
        t_forbidden++;
        return new Scope();
    }

    private sealed class Scope : IDisposable
    {
        private bool _done;

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            t_forbidden--;
        }
    }
}
