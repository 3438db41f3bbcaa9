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

    private static long _settled = -1;   // bytes resident at the first call after the last trim (or ever); -1: take it at the next call

    /// <summary>
    /// <see cref="Trim"/> when the resident set at this call has grown by more than <paramref name="marginBytes"/> over
    /// the settled level: the resident set at the first call after the last trim (or the first call ever, which only
    /// records it). A CPU training step calls it after every step. A step's freed activations stay mapped at its end,
    /// so the level after a trim is not the baseline: measured against it, every step looked grown and was trimmed,
    /// and the next step faulted the returned pages back in (LoRA through the Trainer: 3.1 M vs 1.45 M minor faults in
    /// 9 steps, 8–10 % slower). Against the settled level, a LoRA run's heap, which settles after its first step, is
    /// never trimmed, and a full fine-tune, whose heap grows 70–100 MB per step, every 2–3 steps (bench/README.md).
    /// Returns whether it trimmed.
    /// </summary>
    internal static bool TrimIfGrown(long marginBytes)
    {
        if (!CanTrim) return false;
        long resident = ResidentBytes();
        long settled = Interlocked.Read(ref _settled);
        if (settled < 0)
        {
            Interlocked.Exchange(ref _settled, resident);
            return false;
        }
        if (!ShouldTrim(resident, settled, marginBytes)) return false;
        Trim();
        Interlocked.Exchange(ref _settled, -1);
        return true;
    }

    /// <summary>The rule of <see cref="TrimIfGrown"/>: grown past the margin over the settled level.</summary>
    internal static bool ShouldTrim(long resident, long settled, long marginBytes) => resident - settled > marginBytes;

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
