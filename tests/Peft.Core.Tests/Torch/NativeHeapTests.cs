using Peft.Core.Torch;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Torch;

/// <summary>glibc malloc_trim through <see cref="NativeHeap"/>: available on Linux, and it returns freed heap pages.</summary>
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
}
