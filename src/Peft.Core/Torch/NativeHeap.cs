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

    /// <summary>
    /// How much the resident set may grow after a trim before the training step trims again (64 MiB): see
    /// <see cref="TrimIfGrown"/>.
    /// </summary>
    internal const long StepTrimMarginBytes = 64L << 20;

    private static long _residentAfterTrim = -1;   // bytes resident right after the last TrimIfGrown trim; -1: none yet

    /// <summary>
    /// <see cref="Trim"/> when the resident set has grown by more than <paramref name="marginBytes"/> since the last
    /// trim made here (the first call always trims). A CPU training step calls it after every step: a full fine-tune
    /// leaves 40–100 MB of freed activations in the heap per step and is trimmed every step or two, while a LoRA run,
    /// whose heap settles after the first steps, stops paying for the trim and for faulting the returned pages back
    /// in (LoRA through the Trainer 5–8 % faster than trimming every step, bench/README.md). Returns whether it trimmed.
    /// </summary>
    internal static bool TrimIfGrown(long marginBytes)
    {
        if (!CanTrim || !ShouldTrim(ResidentBytes(), Interlocked.Read(ref _residentAfterTrim), marginBytes)) return false;
        Trim();
        Interlocked.Exchange(ref _residentAfterTrim, ResidentBytes());
        return true;
    }

    /// <summary>The rule of <see cref="TrimIfGrown"/>: no trim yet (<paramref name="afterLastTrim"/> &lt; 0), or grown past the margin.</summary>
    internal static bool ShouldTrim(long resident, long afterLastTrim, long marginBytes) =>
        afterLastTrim < 0 || resident - afterLastTrim > marginBytes;

    /// <summary>This process's resident set in bytes (.NET's <see cref="Environment.WorkingSet"/>: on Linux the RSS of <c>/proc/self/stat</c>).</summary>
    internal static long ResidentBytes() => Environment.WorkingSet;

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
