namespace Peft.Transformers.Optimization;

/// <summary>
/// A learning-rate schedule as transformers builds it (<c>get_scheduler</c> → torch <c>LambdaLR</c>): the lr of step
/// <c>s</c> is <c>baseLr · factor(s)</c>. <see cref="Step"/> advances it after each optimizer step, as
/// <c>lr_scheduler.step()</c> does; <see cref="LastLr"/> is the lr the next optimizer step uses.
/// </summary>
public sealed class LrSchedule
{
    private readonly Func<int, double> _factor;

    /// <summary>A schedule of <paramref name="type"/> over <paramref name="totalSteps"/> with <paramref name="warmupSteps"/> warm-up.</summary>
    public LrSchedule(SchedulerType type, double baseLr, int warmupSteps, int totalSteps, IReadOnlyDictionary<string, double>? kwargs = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        BaseLr = baseLr;
        _factor = Factor(type, warmupSteps, totalSteps, baseLr, kwargs ?? new Dictionary<string, double>());
    }

    /// <summary>The peak learning rate (the optimizer's initial lr).</summary>
    public double BaseLr { get; }

    /// <summary>Steps taken so far (torch <c>last_epoch</c>).</summary>
    public int StepCount { get; private set; }

    /// <summary>The lr for the next optimizer step (torch <c>get_last_lr()[0]</c>).</summary>
    public double LastLr => BaseLr * _factor(StepCount);

    /// <summary>The lr used at step <paramref name="step"/> (0-based).</summary>
    public double LrAt(int step) => BaseLr * _factor(step);

    /// <summary>Advances one step (torch <c>scheduler.step()</c>).</summary>
    public void Step() => StepCount++;

    /// <summary>Restores the position (checkpoint resume).</summary>
    public void Restore(int stepCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stepCount);
        StepCount = stepCount;
    }

    // transformers/optimization.py: one lambda per schedule, each starting with the same linear warm-up.
    private static Func<int, double> Factor(SchedulerType type, int w, int t, double baseLr, IReadOnlyDictionary<string, double> kw)
    {
        double Get(string k, double d) => kw.TryGetValue(k, out var v) ? v : d;
        double Warm(int s) => (double)s / Math.Max(1, w);
        double Progress(int s) => (double)(s - w) / Math.Max(1, t - w);
        switch (type)
        {
            case SchedulerType.Constant:
                return _ => 1.0;
            case SchedulerType.ConstantWithWarmup:
                return s => s < w ? Warm(s) : 1.0;
            case SchedulerType.Linear:
                return s => s < w ? Warm(s) : Math.Max(0.0, (double)(t - s) / Math.Max(1, t - w));
            case SchedulerType.Cosine:
            {
                double cycles = Get("num_cycles", 0.5);
                return s => s < w ? Warm(s) : Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * cycles * 2.0 * Progress(s))));
            }
            case SchedulerType.CosineWithRestarts:
            {
                double cycles = Get("num_cycles", 1.0);
                return s =>
                {
                    if (s < w) return Warm(s);
                    double p = Progress(s);
                    return p >= 1.0 ? 0.0 : Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * ((cycles * p) % 1.0))));
                };
            }
            case SchedulerType.Polynomial:
            {
                double power = Get("power", 1.0), lrEnd = Get("lr_end", 1e-7);
                if (!(baseLr > lrEnd)) throw new ArgumentException($"lr_end ({lrEnd}) must be smaller than the initial lr ({baseLr})", "LrSchedulerKwargs");
                return s =>
                {
                    if (s < w) return Warm(s);
                    if (s > t) return lrEnd / baseLr;
                    double remaining = 1.0 - (double)(s - w) / (t - w);
                    return ((baseLr - lrEnd) * Math.Pow(remaining, power) + lrEnd) / baseLr;
                };
            }
            case SchedulerType.InverseSqrt:
            {
                double timescale = Get("timescale", w > 0 ? w : 10_000);
                return s =>
                {
                    if (s < w) return Warm(s);
                    double shift = timescale - w;
                    return 1.0 / Math.Sqrt((s + shift) / timescale);
                };
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "unknown scheduler type");
        }
    }
}
