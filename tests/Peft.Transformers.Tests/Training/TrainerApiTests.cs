using System.Text.Json.Nodes;
using Peft.Testing;

namespace Peft.Transformers.Tests.Training;

/// <summary>Evaluate / Predict, best-model tracking and load_best_model_at_end, early stopping, reporting, SaveModel / SaveState files.</summary>
public class TrainerApiTests
{
    private static TrainingArguments Args(string dir) => new()
    {
        OutputDir = dir, NumTrainEpochs = 3, PerDeviceTrainBatchSize = 4, LearningRate = 0.05, LoggingSteps = 1,
        EvalStrategy = IntervalStrategy.Epoch, SaveStrategy = IntervalStrategy.Epoch, DisableTqdm = true, Seed = 1,
    };

    [Fact]
    public void EvaluateAndPredictReturnPrefixedMetricsFromComputeMetrics()
    {
        using var dir = new TempDir();
        using var model = new HookWiringTests.TinyRegressor();
        var data = HookWiringTests.Data(10);
        EvalPrediction? seen = null;
        var trainer = new Trainer(model, Args(dir.Path), trainDataset: data, evalDataset: data,
            computeMetrics: p => { seen = p; return new Dictionary<string, double> { ["rows"] = p.PredictionsShape[0] }; });
        var ev = trainer.Evaluate();
        Assert.Equal(10, ev["eval_rows"]);
        Assert.True(ev["eval_loss"] > 0);
        Assert.Equal([10L, 1L], seen!.PredictionsShape);
        Assert.Equal([10L], seen.LabelShape);
        var pred = trainer.Predict(data);
        Assert.Equal(ev["eval_loss"], pred.Metrics["test_loss"], 6);
        Assert.Equal(10, pred.Predictions.Length);
        Assert.Contains(trainer.State.LogHistory, e => e.ContainsKey("eval_loss"));
    }

    [Fact]
    public void TrainsWithEpochStrategiesTracksTheBestAndKeepsItThroughRotation()
    {
        using var dir = new TempDir();
        using var model = new HookWiringTests.TinyRegressor();
        var data = HookWiringTests.Data(8);
        var args = Args(dir.Path) with { LoadBestModelAtEnd = true, SaveTotalLimit = 1, ReportTo = ["jsonl"] };
        var reports = new List<TrainerProgress>();
        var trainer = new Trainer(model, args, trainDataset: data, evalDataset: data, progress: new SyncProgress(reports));
        var output = trainer.Train();
        Assert.Equal(6, output.GlobalStep);
        Assert.Equal(6, reports.Count);
        Assert.Equal(3, trainer.State.LogHistory.Count(e => e.ContainsKey("eval_loss")));
        var evals = trainer.State.LogHistory.Where(e => e.ContainsKey("eval_loss")).ToList();
        var best = evals.MinBy(e => e["eval_loss"])!;
        Assert.Equal(best["eval_loss"], trainer.State.BestMetric);
        Assert.Equal(Path.Combine(dir.Path, "checkpoint-" + (int)best["step"]), trainer.State.BestModelCheckpoint);
        Assert.True(Directory.Exists(trainer.State.BestModelCheckpoint));
        Assert.True(CheckpointFolder.Sorted(dir.Path).Count <= 2);
        Assert.Equal(trainer.State.LogHistory.Count, File.ReadAllLines(Path.Combine(dir.Path, JsonlLoggerCallback.FileName)).Length);
        // load_best_model_at_end: the model now evaluates to the best loss
        Assert.Equal(best["eval_loss"], trainer.Evaluate()["eval_loss"], 6);
        var ckpt = Directory.GetFiles(CheckpointFolder.Last(dir.Path)!).Select(f => Path.GetFileName(f)!).Order().ToArray();
        Assert.Equal(["checkpoint_manifest.json", "model.safetensors", "optimizer.json", "optimizer.safetensors", "rng_state.json",
            "rng_state.safetensors", "scheduler.json", "trainable.safetensors", "trainer_state.json", "training_args.json"], ckpt);
    }

    private sealed class SyncProgress(List<TrainerProgress> sink) : IProgress<TrainerProgress>
    {
        public void Report(TrainerProgress value) => sink.Add(value);
    }

    [Fact]
    public void EarlyStoppingStopsAfterPatienceEvaluationsWithoutImprovement()
    {
        using var dir = new TempDir();
        using var model = new HookWiringTests.TinyRegressor();
        var data = HookWiringTests.Data(8);
        var args = Args(dir.Path) with { NumTrainEpochs = 20, LearningRate = 0.0, MetricForBestModel = "loss", SaveStrategy = IntervalStrategy.No };
        var stop = new EarlyStoppingCallback(patience: 2);
        var trainer = new Trainer(model, args, trainDataset: data, evalDataset: data, callbacks: [stop]);
        trainer.Train();
        Assert.Equal(3, trainer.State.LogHistory.Count(e => e.ContainsKey("eval_loss"))); // best, then 2 without improvement
        Assert.Equal(6, trainer.State.GlobalStep);
    }

    [Fact]
    public void SaveModelOfAPeftModelWritesOnlyTheAdapterAndTheTokenizer()
    {
        using var dir = new TempDir();
        using var pm = TrajectoryReplay.LoadInitial("opt-lora");
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("opt-tiny"));
        var trainer = new Trainer(pm, new TrainingArguments { OutputDir = dir.Path, DisableTqdm = true }, tokenizer: tok);
        trainer.SaveModel();
        trainer.SaveState();
        Assert.True(File.Exists(dir.File("adapter_model.safetensors")));
        Assert.True(File.Exists(dir.File("adapter_config.json")));
        Assert.False(File.Exists(dir.File("model.safetensors")));
        Assert.True(File.Exists(dir.File("tokenizer.json")));
        Assert.True(File.Exists(dir.File("training_args.json")));
        var state = JsonNode.Parse(File.ReadAllText(dir.File("trainer_state.json")))!.AsObject();
        foreach (var key in new[] { "best_metric", "best_model_checkpoint", "epoch", "eval_steps", "global_step", "is_hyper_param_search",
                     "is_local_process_zero", "is_world_process_zero", "log_history", "logging_steps", "max_steps", "num_input_tokens_seen",
                     "num_train_epochs", "save_steps", "stateful_callbacks", "total_flos", "train_batch_size", "trial_name", "trial_params" })
            Assert.True(state.ContainsKey(key), $"trainer_state.json lacks HF key '{key}'");
    }

    [Fact]
    public void LoggerAndConsoleProgressReportEveryStep()
    {
        using var dir = new TempDir();
        using var model = new HookWiringTests.TinyRegressor();
        var logger = new ListLogger();
        var console = new StringWriter();
        var args = Args(dir.Path) with { EvalStrategy = IntervalStrategy.No, SaveStrategy = IntervalStrategy.No, NumTrainEpochs = 1 };
        var trainer = new Trainer(model, args, trainDataset: HookWiringTests.Data(8), logger: logger, callbacks: [new ConsoleProgressCallback(console)]);
        trainer.Train();
        Assert.Equal(3, logger.Lines.Count); // two steps, then the train summary
        Assert.Contains("'loss': ", logger.Lines[0]);
        Assert.Contains("'train_runtime': ", logger.Lines[^1]);
        string bar = console.ToString();
        Assert.Contains("2/2", bar);
        Assert.Contains("it/s", bar);
        Assert.Contains("ETA", bar);
        Assert.DoesNotContain(trainer.Callbacks, c => c is ConsoleProgressCallback && !ReferenceEquals(c, trainer.Callbacks[^1])); // DisableTqdm: no default bar
    }

    [Fact]
    public void ConsoleProgressShowsADashBeforeTheFirstLog()
    {
        using var dir = new TempDir();
        using var model = new HookWiringTests.TinyRegressor();
        var console = new StringWriter();
        var args = Args(dir.Path) with { EvalStrategy = IntervalStrategy.No, SaveStrategy = IntervalStrategy.No, NumTrainEpochs = 1, LoggingSteps = 1 };
        new Trainer(model, args, trainDataset: HookWiringTests.Data(8), callbacks: [new ConsoleProgressCallback(console)]).Train();
        var frames = console.ToString().Split('\r', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, frames.Length);
        Assert.Contains("1/2 loss - lr - ", frames[0]);         // the bar of step 1 is drawn before step 1 logs (HF order)
        Assert.Matches(@"2/2 loss \d+\.\d{4} lr \d\.\d{2}E[-+]\d{3} ", frames[1]); // step 1's log
        Assert.DoesNotContain("NaN", console.ToString());
    }

    private sealed class ListLogger : Microsoft.Extensions.Logging.ILogger
    {
        public List<string> Lines { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Lines.Add(formatter(state, exception));
    }
}
