using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Peft.Transformers;

/// <summary>Writes every log entry to an <see cref="ILogger"/> at Information level (HF's <c>PrinterCallback</c> / logging).</summary>
public sealed class LoggerCallback(ILogger logger) : ITrainerCallback
{
    /// <inheritdoc />
    public void OnLog(TrainingArguments args, TrainerState state, TrainerControl control, IReadOnlyDictionary<string, double> logs) =>
        logger.LogInformation("{Logs}", Format(logs));

    internal static string Format(IReadOnlyDictionary<string, double> logs) =>
        "{" + string.Join(", ", logs.Select(kv => $"'{kv.Key}': {kv.Value.ToString("R", CultureInfo.InvariantCulture)}")) + "}";
}

/// <summary>Reports <see cref="TrainerProgress"/> after every step to an <see cref="IProgress{T}"/> (apps with their own UI).</summary>
public sealed class ProgressReporterCallback(IProgress<TrainerProgress> progress) : ITrainerCallback
{
    private readonly Stopwatch _clock = new();
    private int _startStep;
    private double _lastLoss = double.NaN;

    /// <inheritdoc />
    public void OnTrainBegin(TrainingArguments args, TrainerState state, TrainerControl control)
    {
        _startStep = state.GlobalStep;
        _clock.Restart();
    }

    /// <inheritdoc />
    public void OnLog(TrainingArguments args, TrainerState state, TrainerControl control, IReadOnlyDictionary<string, double> logs)
    {
        if (logs.TryGetValue("loss", out var l)) _lastLoss = l;
    }

    /// <inheritdoc />
    public void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control) =>
        progress.Report(Snapshot(state, _lastLoss, LastLr(state), _clock.Elapsed.TotalSeconds, state.GlobalStep - _startStep));

    private static double LastLr(TrainerState state) =>
        state.LogHistory.LastOrDefault(e => e.ContainsKey("learning_rate"))?["learning_rate"] ?? double.NaN;

    internal static TrainerProgress Snapshot(TrainerState state, double loss, double lr, double seconds, int steps)
    {
        double rate = seconds > 0 ? steps / seconds : 0;
        var eta = rate > 0 ? TimeSpan.FromSeconds((state.MaxSteps - state.GlobalStep) / rate) : TimeSpan.Zero;
        return new TrainerProgress(state.GlobalStep, state.MaxSteps, state.Epoch, loss, lr, rate, eta);
    }
}

/// <summary>
/// The default console progress bar (HF's tqdm <c>ProgressCallback</c>): one line rewritten in place with step,
/// loss, lr, it/s and ETA; off with <see cref="TrainingArguments.DisableTqdm"/>. Writes to standard error so that
/// standard output stays for the app.
/// </summary>
public sealed class ConsoleProgressCallback : ITrainerCallback
{
    private readonly TextWriter _out;
    private readonly ProgressReporterCallback _inner;
    private TrainerProgress? _last;

    /// <summary>A progress bar on <paramref name="writer"/> (default: standard error).</summary>
    public ConsoleProgressCallback(TextWriter? writer = null)
    {
        _out = writer ?? Console.Error;
        _inner = new ProgressReporterCallback(new Progress(this));
    }

    private sealed class Progress(ConsoleProgressCallback owner) : IProgress<TrainerProgress>
    {
        public void Report(TrainerProgress value) => owner.Draw(value);
    }

    /// <inheritdoc />
    public void OnTrainBegin(TrainingArguments args, TrainerState state, TrainerControl control) => _inner.OnTrainBegin(args, state, control);
    /// <inheritdoc />
    public void OnLog(TrainingArguments args, TrainerState state, TrainerControl control, IReadOnlyDictionary<string, double> logs) => _inner.OnLog(args, state, control, logs);
    /// <inheritdoc />
    public void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control) => _inner.OnStepEnd(args, state, control);
    /// <inheritdoc />
    public void OnTrainEnd(TrainingArguments args, TrainerState state, TrainerControl control)
    {
        if (_last is not null) _out.WriteLine();
    }

    private void Draw(TrainerProgress p)
    {
        _last = p;
        const int width = 30;
        int filled = p.MaxSteps > 0 ? (int)((long)width * p.GlobalStep / p.MaxSteps) : 0;
        var bar = new string('#', filled) + new string('-', width - filled);
        _out.Write(string.Create(CultureInfo.InvariantCulture,
            $"\r[{bar}] {p.GlobalStep}/{p.MaxSteps} loss {Value(p.Loss, "F4")} lr {Value(p.LearningRate, "E2")} {p.StepsPerSecond:F2} it/s ETA {p.Eta:hh\\:mm\\:ss}"));
    }

    // Loss and lr are NaN until the first log entry (logging_steps): shown as "-" rather than "NaN".
    private static string Value(double v, string format) => double.IsNaN(v) ? "-" : v.ToString(format, CultureInfo.InvariantCulture);
}
