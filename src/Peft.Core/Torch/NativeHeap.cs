using System.Runtime.InteropServices;

namespace Peft.Core.Torch;

/// <summary>
/// The process's native (C) heap, where libtorch's CPU tensors live. glibc keeps freed memory of its heap arenas
/// mapped (counted in RSS) until the top of an arena is free or <c>malloc_trim</c> is called; a training step frees
/// hundreds of MB of activations and gradients in an order that leaves them below live blocks, so RSS can stay above
/// what is in use. <see cref="Trim"/> hands the free pages back to the kernel.
/// </summary>
public static class NativeHeap
{
    /// <summary>Whether <see cref="Trim"/> does anything here (Linux with glibc).</summary>
    public static bool CanTrim { get; } = OperatingSystem.IsLinux() && HasGlibcTrim();

    /// <summary>
    /// glibc <c>malloc_trim(0)</c>: returns the free pages of every malloc arena to the kernel. A no-op (false) where
    /// <see cref="CanTrim"/> is false. Costs a walk over the arenas' free lists (milliseconds for a training step's heap).
    /// </summary>
    public static bool Trim() => CanTrim && malloc_trim(UIntPtr.Zero) != 0;

    /// <summary>
    /// Whether the library trims at its own step boundaries (after a CPU training step, after the layers of a CPU
    /// inference forward over several tokens): on unless <c>PEFT_MALLOC_TRIM=0</c>.
    /// </summary>
    internal static bool TrimAtSteps { get; } = Environment.GetEnvironmentVariable("PEFT_MALLOC_TRIM") != "0";

    private static bool HasGlibcTrim()
    {
        try
        {
            return NativeLibrary.TryLoad("libc.so.6", out var libc) && NativeLibrary.TryGetExport(libc, "malloc_trim", out _);
        }
        catch (DllNotFoundException)
        {
            return false;
        }
    }

    [DllImport("libc.so.6", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(UIntPtr pad);
}
