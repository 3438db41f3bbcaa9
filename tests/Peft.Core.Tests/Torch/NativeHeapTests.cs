using Peft.Core.Torch;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Torch;

/// <summary>
/// glibc malloc_trim through <see cref="NativeHeap"/>: available on Linux, and it returns freed heap pages. Run alone:
/// the tests read the process's resident set, which tests on other threads would change in between.
/// </summary>
[Collection(Peft.Testing.LeakTestCollection.Name)]
public class NativeHeapTests
{
    private static long RssKb() =>
        long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void TrimReturnsFreedHeapPagesOnLinux()
    {
        Assert.Equal(OperatingSystem.IsLinux(), NativeHeap.CanTrim);
        if (!OperatingSystem.IsLinux()) return;
        // 2,000 heap-sized tensors (64 KB each, below glibc's mmap threshold), every other one freed: the holes stay
        // mapped until trimmed because live blocks sit above them
        var kept = new List<Tensor>();
        var freed = new List<Tensor>();
        for (int i = 0; i < 2000; i++) (i % 2 == 0 ? kept : freed).Add(ones(16 * 1024));
        foreach (var t in freed) t.Dispose();
        long before = RssKb();
        NativeHeap.Trim();
        long after = RssKb();
        foreach (var t in kept) t.Dispose();
        Assert.True(before - after >= 16 * 1024, $"malloc_trim returned {before - after} KB of the ~64 MB freed ({before} -> {after} KB)");
    }

    [Theory]
    [InlineData(500L << 20, 480L << 20, false)]          // 20 MiB above the settled level: within the 64 MiB margin
    [InlineData(500L << 20, (500L - 64) << 20, false)]   // exactly the margin: not past it
    [InlineData(500L << 20, 400L << 20, true)]           // grown 100 MiB: trim
    [InlineData(300L << 20, 400L << 20, false)]          // shrunk since: nothing to return
    public void StepTrimRuleTrimsOnlyPastTheMargin(long resident, long settled, bool expected) =>
        Assert.Equal(expected, NativeHeap.ShouldTrim(resident, settled, NativeHeap.StepTrimMarginBytes));

    /// <summary>
    /// The resident set read from statm equals VmRSS. The first call after a trim only records the settled level; a
    /// call at that level does not trim (a settled LoRA step's heap, freed activations included, is left alone); 128 MB
    /// of live heap tensors later it trims, and the call after that records the level again instead of trimming.
    /// </summary>
    [Fact]
    public void TrimIfGrownTrimsOnlyWhenTheResidentSetGrewPastTheSettledLevel()
    {
        if (!OperatingSystem.IsLinux()) return;
        long viaStatm = NativeHeap.ResidentBytes(), viaStatus = RssKb() * 1024;
        Assert.True(Math.Abs(viaStatm - viaStatus) < (16L << 20), $"statm {viaStatm} vs status {viaStatus} bytes");
        NativeHeap.Trim();                                             // no free heap pages for the tensors below to reuse
        while (NativeHeap.TrimIfGrown(long.MinValue)) { }              // a level recorded before (even a higher one): trims, then records the level now
        Assert.False(NativeHeap.TrimIfGrown(NativeHeap.StepTrimMarginBytes));   // no growth: a settled heap is left alone
        var kept = Enumerable.Range(0, 2000).Select(_ => ones(16 * 1024)).ToList();   // 64 KB heap blocks, 128 MB resident
        try
        {
            Assert.True(NativeHeap.TrimIfGrown(NativeHeap.StepTrimMarginBytes), $"resident {NativeHeap.ResidentBytes()} bytes after 128 MB of tensors");
            Assert.False(NativeHeap.TrimIfGrown(0));                   // the first call after a trim records the new level
            Assert.False(NativeHeap.TrimIfGrown(NativeHeap.StepTrimMarginBytes));   // no growth since
        }
        finally
        {
            foreach (var t in kept) t.Dispose();
        }
    }
}
