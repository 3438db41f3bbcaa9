using TorchSharp;
using Xunit;

namespace Peft.Testing;

/// <summary>
/// Counts live native tensors on this thread through <see cref="DisposeScopeManager.Statistics"/>. Run leak tests
/// in the <see cref="LeakTestCollection"/> so no other test creates tensors on the same thread meanwhile.
/// </summary>
public static class LeakCheck
{
    /// <summary>Live tensors created on this thread and not yet disposed.</summary>
    public static long LiveTensors => DisposeScopeManager.Statistics.TensorStatistics.ThreadTotalLiveCount;

    /// <summary>
    /// Runs <paramref name="action"/> once to warm up, then <paramref name="iterations"/> times, and asserts that the
    /// live-tensor count after the loop equals the count after the warm-up (within <paramref name="slack"/>).
    /// Returns the growth observed.
    /// </summary>
    public static long AssertNoGrowth(Action action, int iterations = 100, long slack = 0, string? what = null)
    {
        action();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long before = LiveTensors;
        for (int i = 0; i < iterations; i++) action();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long growth = LiveTensors - before;
        Assert.True(growth <= slack, $"{what}: {growth} live tensors leaked over {iterations} iterations ({(double)growth / iterations:F2} per iteration)");
        return growth;
    }
}

/// <summary>Tests that count live tensors run in this collection, one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LeakTestCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Leak tests (sequential)";
}
