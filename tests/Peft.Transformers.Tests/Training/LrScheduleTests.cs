namespace Peft.Transformers.Tests.Training;

/// <summary>
/// The schedules' defining points as transformers' <c>optimization.py</c> documents them (warm-up from 0, where each
/// decay reaches half and zero). The linear schedule is also checked step by step by the trajectory fixtures.
/// </summary>
public class LrScheduleTests
{
    [Theory]
    [InlineData(SchedulerType.Linear)]
    [InlineData(SchedulerType.Cosine)]
    [InlineData(SchedulerType.CosineWithRestarts)]
    [InlineData(SchedulerType.Polynomial)]
    [InlineData(SchedulerType.ConstantWithWarmup)]
    [InlineData(SchedulerType.InverseSqrt)]
    public void WarmUpStartsAtZeroAndReachesThePeak(SchedulerType type)
    {
        var s = new LrSchedule(type, 0.1, 4, 20);
        Assert.Equal(0.0, s.LrAt(0));
        Assert.Equal(0.05, s.LrAt(2), 12);
        Assert.Equal(0.1, s.LrAt(4), 12);
    }

    [Fact]
    public void DecaysReachTheirDocumentedValues()
    {
        Assert.Equal(0.05, new LrSchedule(SchedulerType.Linear, 0.1, 0, 10).LrAt(5), 12);
        Assert.Equal(0.0, new LrSchedule(SchedulerType.Linear, 0.1, 2, 10).LrAt(10), 12);
        Assert.Equal(0.05, new LrSchedule(SchedulerType.Cosine, 0.1, 0, 10).LrAt(5), 12);
        Assert.Equal(0.0, new LrSchedule(SchedulerType.Cosine, 0.1, 0, 10).LrAt(10), 12);
        var restarts = new LrSchedule(SchedulerType.CosineWithRestarts, 0.1, 0, 12, new Dictionary<string, double> { ["num_cycles"] = 2 });
        Assert.Equal(0.1, restarts.LrAt(6), 12);       // the second cycle restarts at the peak
        Assert.Equal(0.05, restarts.LrAt(3), 12);
        var poly = new LrSchedule(SchedulerType.Polynomial, 0.1, 0, 10, new Dictionary<string, double> { ["power"] = 2, ["lr_end"] = 0.0 });
        Assert.Equal(0.025, poly.LrAt(5), 12);
        Assert.Equal(0.1, new LrSchedule(SchedulerType.Constant, 0.1, 3, 10).LrAt(0));
        var inv = new LrSchedule(SchedulerType.InverseSqrt, 0.1, 4, 100);
        Assert.Equal(0.05, inv.LrAt(16), 12);          // 1/sqrt(16/4)
    }

    [Fact]
    public void StepAdvancesLikeTorchLambdaLR()
    {
        var s = new LrSchedule(SchedulerType.Linear, 1.0, 2, 4);
        Assert.Equal(0.0, s.LastLr);
        s.Step();
        Assert.Equal(0.5, s.LastLr);
        s.Restore(3);
        Assert.Equal(0.5, s.LastLr);
    }
}
