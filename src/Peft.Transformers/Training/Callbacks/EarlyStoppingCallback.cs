using System.Text.Json;

namespace Peft.Transformers;

/// <summary>
/// Stops training when the ranking metric (<see cref="TrainingArguments.MetricForBestModel"/>) has not improved by
/// more than <paramref name="threshold"/> for <paramref name="patience"/> evaluations (HF <c>EarlyStoppingCallback</c>).
/// Its counter is kept in <c>trainer_state.json</c> so a resumed run continues it.
/// </summary>
public sealed class EarlyStoppingCallback(int patience = 1, double threshold = 0.0) : ITrainerCallback
{
    private const string Key = "EarlyStoppingCallback";

    /// <summary>Evaluations without improvement so far.</summary>
    public int PatienceCounter { get; private set; }

    /// <inheritdoc />
    public void OnTrainBegin(TrainingArguments args, TrainerState state, TrainerControl control)
    {
        if (args.BestMetricKey is null)
            throw new ArgumentException("EarlyStoppingCallback needs TrainingArguments.MetricForBestModel (or LoadBestModelAtEnd)", nameof(args));
        if (args.EvalStrategy == IntervalStrategy.No)
            throw new ArgumentException("EarlyStoppingCallback needs evaluation: TrainingArguments.EvalStrategy is No", nameof(args));
        if (state.StatefulCallbacks.TryGetValue(Key, out var s) && s.TryGetProperty("early_stopping_patience_counter", out var c))
            PatienceCounter = c.GetInt32();
    }

    /// <inheritdoc />
    public void OnEvaluate(TrainingArguments args, TrainerState state, TrainerControl control, IReadOnlyDictionary<string, double> metrics)
    {
        string key = args.BestMetricKey!;
        if (!metrics.TryGetValue(key, out double value))
            throw new KeyNotFoundException($"EarlyStoppingCallback: metric '{key}' not in the evaluation results [{string.Join(", ", metrics.Keys)}]");
        bool greater = args.GreaterIsBetterResolved;
        bool improved = state.BestMetric is not double best
            || (greater ? value > best && Math.Abs(value - best) > threshold : value < best && Math.Abs(value - best) > threshold);
        PatienceCounter = improved ? 0 : PatienceCounter + 1;
        if (PatienceCounter >= patience) control.ShouldTrainingStop = true;
        state.StatefulCallbacks[Key] = JsonSerializer.SerializeToElement(new Dictionary<string, object>
        {
            ["args"] = new Dictionary<string, double> { ["early_stopping_patience"] = patience, ["early_stopping_threshold"] = threshold },
            ["early_stopping_patience_counter"] = PatienceCounter,
        });
    }
}
