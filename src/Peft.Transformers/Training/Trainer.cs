using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Peft.Core;
using Peft.Core.IO;
using Peft.Datasets;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Trains a model (a <see cref="PreTrainedModel"/>, a <see cref="PeftModel"/> or any module whose output carries the
/// loss) with HF Trainer's math (HF <c>transformers.Trainer</c>): AdamW as torch, transformers' schedules, clipping,
/// gradient accumulation equal to one large batch, logging / evaluation / checkpoints by strategy, exact resume.
/// The loop is <see cref="Train"/>; a step is <see cref="TrainStep"/>; flow decisions are callbacks
/// (<see cref="DefaultFlowCallback"/>); checkpoints are <see cref="CheckpointFolder"/> + <see cref="TrainingSnapshot"/>.
/// </summary>
/// <remarks>
/// The model is moved to <see cref="TrainingArguments.Device"/> when set; with <see cref="TrainingArguments.Bf16"/>
/// its floating-point parameters are cast to bfloat16 (float32 master copies are trained). A fresh run seeds torch's
/// CPU generator with <see cref="TrainingArguments.Seed"/> (dropout draws from it, as in PyTorch); exact resume
/// restores it, so other threads drawing from torch's global generator during training make dropout unrepeatable.
/// </remarks>
public sealed class Trainer
{
    private readonly nn.Module<ModelInput, ModelOutput> _model;
    private readonly Dataset? _trainDataset;
    private readonly Dataset? _evalDataset;
    private readonly IDataCollator _collator;
    private readonly Func<EvalPrediction, IReadOnlyDictionary<string, double>>? _computeMetrics;
    private readonly CallbackList _callbacks;
    private readonly PreTrainedTokenizer? _tokenizer;
    private readonly Device _device;
    private readonly IReadOnlyList<string> _labelNames;
    private TrainerControl _control = new();
    private bool _newBest;

    private readonly ILogger? _logger;

    /// <summary>
    /// Test seam: steps run <see cref="TrainingArguments.CudaGraphs"/>' step body (capturable AdamW, no host reads)
    /// eagerly, on any device, without capturing; the CPU tests compare it with the reference trajectories.
    /// </summary>
    internal bool GraphFormWithoutCapture { get; set; }

    /// <summary>Creates a Trainer; validates <paramref name="args"/> (throws naming the field) and the model's abilities.</summary>
    /// <param name="model">The model; its forward must return <see cref="ModelOutput.Loss"/> when labels are given.</param>
    /// <param name="args">The run's settings.</param>
    /// <param name="trainDataset">Training rows (HF <c>train_dataset</c>).</param>
    /// <param name="evalDataset">Evaluation rows (HF <c>eval_dataset</c>).</param>
    /// <param name="dataCollator">Builds batches; default <see cref="DataCollatorWithPadding"/> with a tokenizer, else <see cref="DefaultDataCollator"/>.</param>
    /// <param name="computeMetrics">Metrics from an <see cref="EvalPrediction"/> (keys get the <c>eval_</c> prefix).</param>
    /// <param name="callbacks">Extra callbacks, called after the default ones.</param>
    /// <param name="tokenizer">The processing class; saved beside the model by <see cref="SaveModel"/>.</param>
    /// <param name="progress">Receives <see cref="TrainerProgress"/> after each step.</param>
    /// <param name="logger">Receives each log entry.</param>
    /// <param name="dataParallel">
    /// Data parallelism over ranks (default <see cref="DataParallel.FromEnvironment"/>: one process unless started by
    /// peft-run / torchrun with <c>WORLD_SIZE</c> &gt; 1). Progress, logger and report callbacks run on rank 0 only.
    /// </param>
    public Trainer(nn.Module<ModelInput, ModelOutput> model, TrainingArguments args, Dataset? trainDataset = null, Dataset? evalDataset = null,
        IDataCollator? dataCollator = null, Func<EvalPrediction, IReadOnlyDictionary<string, double>>? computeMetrics = null,
        IEnumerable<ITrainerCallback>? callbacks = null, PreTrainedTokenizer? tokenizer = null, IProgress<TrainerProgress>? progress = null, ILogger? logger = null,
        DataParallel? dataParallel = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(args);
        args.Validate();
        if (args.Fp16)
            throw new NotSupportedException("TrainingArguments.Fp16 = true: float16 training needs loss scaling (a GradScaler), which this Trainer does not implement; use Bf16 = true");
        if (args.EvalStrategy != IntervalStrategy.No && evalDataset is null)
            throw new ArgumentException($"TrainingArguments.EvalStrategy = {args.EvalStrategy} needs an evalDataset", nameof(evalDataset));
        (_model, Args, _trainDataset, _evalDataset, _computeMetrics, _tokenizer) = (model, args, trainDataset, evalDataset, computeMetrics, tokenizer);
        _collator = dataCollator ?? (tokenizer is not null ? new DataCollatorWithPadding(tokenizer) : new DefaultDataCollator());
        _labelNames = args.LabelNames ?? ["labels"];
        _device = args.Device is not null ? new Device(args.Device) : model.parameters().FirstOrDefault()?.device ?? CPU;
        if (args.Device is not null) model.to(_device);
        if (args.CudaGraphs && _device.type != DeviceType.CUDA)
            throw new ArgumentException($"TrainingArguments.CudaGraphs = true: the model is on {_device}; CUDA graphs need a CUDA device (set Device = \"cuda\")", nameof(args));
        _logger = logger;
        if (args.GradientCheckpointing) GradientCheckpointingOf(model).GradientCheckpointingEnable();
        Parallel = dataParallel ?? DataParallel.FromEnvironment();
        var list = new List<ITrainerCallback> { new DefaultFlowCallback() };
        if (!args.DisableTqdm && Parallel.IsMain) list.Add(new ConsoleProgressCallback());
        if (args.ReportTo.Contains("jsonl") && Parallel.IsMain) list.Add(new JsonlLoggerCallback());
        if (progress is not null && Parallel.IsMain) list.Add(new ProgressReporterCallback(progress));
        if (logger is not null && Parallel.IsMain) list.Add(new LoggerCallback(logger));
        list.AddRange(callbacks ?? []);
        _callbacks = new CallbackList(list);
    }

    /// <summary>The run's settings.</summary>
    public TrainingArguments Args { get; }

    /// <summary>The data-parallel strategy (<see cref="DataParallel.None"/> for one process).</summary>
    public DataParallel Parallel { get; }

    /// <summary>The model being trained.</summary>
    public nn.Module<ModelInput, ModelOutput> Model => _model;

    /// <summary>Progress and log history (HF <c>trainer.state</c>).</summary>
    public TrainerState State { get; private set; } = new();

    /// <summary>The callbacks in call order (default ones first).</summary>
    public IReadOnlyList<ITrainerCallback> Callbacks => _callbacks.Items;

    /// <summary>
    /// Trains (HF <c>train()</c>). <paramref name="resumeFromCheckpoint"/>: a checkpoint folder, "last" (the newest
    /// in <see cref="TrainingArguments.OutputDir"/>), or null for a fresh run. A resumed run continues exactly (same
    /// data order, dropout draws, optimizer state, log accumulators). <paramref name="cancellationToken"/> is checked
    /// at step boundaries: a checkpoint is written, then <see cref="OperationCanceledException"/> is thrown.
    /// </summary>
    public TrainOutput Train(string? resumeFromCheckpoint = null, CancellationToken cancellationToken = default)
    {
        var train = _trainDataset ?? throw new InvalidOperationException("Trainer.Train needs a trainDataset");
        var clock = Stopwatch.StartNew();
        using var run = TrainingRun.Start(this, train, resumeFromCheckpoint);
        run.Step.OnEagerGraphStep = why => _logger?.LogWarning("CUDA-graph training step ran eagerly ({Reason}); pad batches to one length to replay the graph", why);
        _control = new TrainerControl();
        _callbacks.Each(c => c.OnTrainBegin(Args, State, _control));
        _control.ShouldTrainingStop |= State.GlobalStep >= State.MaxSteps;
        int stepsAtStart = State.GlobalStep;
        for (int epoch = run.Epoch; epoch < State.NumTrainEpochs && !_control.ShouldTrainingStop; epoch++, run.NextEpoch())
        {
            _callbacks.Each(c => c.OnEpochBegin(Args, State, _control));
            foreach (var microBatches in run.Loader.Epoch(epoch, run.BatchInEpoch).Chunk(Args.GradientAccumulationSteps))
            {
                if (cancellationToken.IsCancellationRequested) Cancel(run, microBatches, cancellationToken);
                var (loss, gradNorm, tokens) = run.Step.Run(microBatches, State.GlobalStep);
                run.Advance(microBatches.Length, loss, gradNorm);
                State.GlobalStep++;
                State.NumInputTokensSeen += tokens;
                State.Epoch = epoch + (double)run.BatchInEpoch / run.Loader.BatchesPerEpoch;
                _callbacks.Each(c => c.OnStepEnd(Args, State, _control));
                MaybeLogEvaluateSave(run);
                _control.ShouldTrainingStop = Parallel.FromMain(_control.ShouldTrainingStop); // rank 0's evaluation decides early stopping
                if (_control.ShouldTrainingStop || _control.ShouldEpochStop) break;
            }
            _control.ShouldEpochStop = false;
            _callbacks.Each(c => c.OnEpochEnd(Args, State, _control));
            MaybeLogEvaluateSave(run);
        }
        _callbacks.Each(c => c.OnTrainEnd(Args, State, _control));
        if (Args.LoadBestModelAtEnd && State.BestModelCheckpoint is { } best) run.LoadWeights(best);
        return Finish(run, clock.Elapsed.TotalSeconds, State.GlobalStep - stepsAtStart);
    }

    private void Cancel(TrainingRun run, Dictionary<string, Tensor>[] unused, CancellationToken token)
    {
        foreach (var batch in unused)
            foreach (var t in batch.Values) t.Dispose();
        if (Parallel.IsMain) SaveCheckpoint(run);
        token.ThrowIfCancellationRequested();
    }

    private void MaybeLogEvaluateSave(TrainingRun run)
    {
        if (_control.ShouldLog && State.GlobalStep > run.LastLoggedStep) Log(run.TakeLogs(State));
        if (_control.ShouldEvaluate && _evalDataset is not null && Parallel.IsMain) Evaluate();
        if (_control.ShouldSave && Parallel.IsMain) SaveCheckpoint(run);
        (_control.ShouldLog, _control.ShouldEvaluate, _control.ShouldSave) = (false, false, false);
    }

    private void SaveCheckpoint(TrainingRun run)
    {
        string final = Path.Combine(Args.OutputDir, CheckpointFolder.Prefix + State.GlobalStep);
        if (_newBest) State.BestModelCheckpoint = final;
        _newBest = false;
        CheckpointFolder.Write(Args.OutputDir, State.GlobalStep, dir =>
        {
            TrainingSnapshot.SaveModelFiles(_model, dir);
            run.SaveSnapshot(dir);
            AtomicFile.WriteAllText(Path.Combine(dir, "trainer_state.json"), State.ToJson());
            AtomicFile.WriteAllText(Path.Combine(dir, "training_args.json"), Args.ToJson());
        });
        CheckpointFolder.Rotate(Args.OutputDir, Args.SaveTotalLimit, State.BestModelCheckpoint);
        _callbacks.Each(c => c.OnSave(Args, State, _control));
    }

    private TrainOutput Finish(TrainingRun run, double seconds, int steps)
    {
        var losses = State.LogHistory.Where(e => e.ContainsKey("loss")).Select(e => e["loss"]).ToList();
        double trainLoss = run.TotalLoss / Math.Max(1, State.GlobalStep);
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["train_runtime"] = seconds,
            ["train_samples_per_second"] = steps * Args.PerDeviceTrainBatchSize * Args.GradientAccumulationSteps * Parallel.WorldSize / Math.Max(seconds, 1e-9),
            ["train_steps_per_second"] = steps / Math.Max(seconds, 1e-9),
            ["total_flos"] = 0,
            ["train_loss"] = losses.Count > 0 ? trainLoss : double.NaN,
            ["epoch"] = State.Epoch,
        };
        Log(metrics);
        return new TrainOutput(State.GlobalStep, trainLoss, metrics);
    }

    /// <summary>Adds an entry (with <c>epoch</c> and <c>step</c>) to the log history and calls <c>on_log</c> (HF <c>log()</c>).</summary>
    public void Log(IReadOnlyDictionary<string, double> logs)
    {
        var entry = new Dictionary<string, double>(logs, StringComparer.Ordinal);
        entry.TryAdd("epoch", State.Epoch);
        entry["step"] = State.GlobalStep;
        State.LogHistory.Add(entry);
        _callbacks.Each(c => c.OnLog(Args, State, _control, entry));
    }

    /// <summary>
    /// Evaluates on <paramref name="evalDataset"/> (default: the Trainer's) and logs the result (HF <c>evaluate()</c>):
    /// <c>eval_loss</c>, <c>eval_</c>-prefixed metrics from <c>computeMetrics</c>, runtime keys. Tracks the best metric.
    /// </summary>
    public IReadOnlyDictionary<string, double> Evaluate(Dataset? evalDataset = null)
    {
        var data = evalDataset ?? _evalDataset ?? throw new InvalidOperationException("Trainer.Evaluate needs an evalDataset");
        var (_, metrics) = EvaluationLoop.Run(_model, data, _collator, Args.PerDeviceEvalBatchSize, _device, _labelNames, _computeMetrics, KeepColumns, "eval");
        Log(metrics);
        _callbacks.Each(c => c.OnEvaluate(Args, State, _control, metrics)); // sees the previous best, as HF's on_evaluate
        UpdateBest(metrics);
        return metrics;
    }

    /// <summary>Predictions, labels and <c>test_</c>-prefixed metrics on <paramref name="dataset"/> (HF <c>predict()</c>).</summary>
    public PredictionOutput Predict(Dataset dataset)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        var (prediction, metrics) = EvaluationLoop.Run(_model, dataset, _collator, Args.PerDeviceEvalBatchSize, _device, _labelNames, _computeMetrics, KeepColumns, "test");
        return new PredictionOutput(prediction, metrics);
    }

    private void UpdateBest(IReadOnlyDictionary<string, double> metrics)
    {
        if (Args.BestMetricKey is not { } key) return;
        if (!metrics.TryGetValue(key, out double value))
            throw new KeyNotFoundException($"TrainingArguments.MetricForBestModel: '{key}' is not among the evaluation metrics [{string.Join(", ", metrics.Keys)}]");
        bool better = State.BestMetric is not double best || (Args.GreaterIsBetterResolved ? value > best : value < best);
        if (!better) return;
        (State.BestMetric, State.BestGlobalStep, _newBest) = (value, State.GlobalStep, true);
    }

    /// <summary>
    /// Saves the model to <paramref name="outputDir"/> (default <see cref="TrainingArguments.OutputDir"/>) (HF
    /// <c>save_model()</c>): a PEFT model writes only its adapter; the tokenizer (or the collator's) is saved beside
    /// it; <c>training_args.json</c> too.
    /// </summary>
    public void SaveModel(string? outputDir = null)
    {
        string dir = outputDir ?? Args.OutputDir;
        TrainingSnapshot.SaveModelFiles(_model, dir);
        var tok = _tokenizer ?? (_collator as DataCollatorWithPadding)?.Tokenizer ?? (_collator as DataCollatorForLanguageModeling)?.Tokenizer
            ?? (_collator as DataCollatorForTokenClassification)?.Tokenizer;
        tok?.SavePretrained(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, "training_args.json"), Args.ToJson());
    }

    /// <summary>Writes <c>trainer_state.json</c> to <see cref="TrainingArguments.OutputDir"/> (HF <c>save_state()</c>).</summary>
    public void SaveState() => AtomicFile.WriteAllText(Path.Combine(Args.OutputDir, "trainer_state.json"), State.ToJson());

    internal IReadOnlySet<string>? KeepColumns => Args.RemoveUnusedColumns ? BatchInput.ModelColumns.Concat(_labelNames).ToHashSet() : null;

    internal IDataCollator Collator => _collator;

    internal Device Device => _device;

    internal IReadOnlyList<string> LabelNames => _labelNames;

    internal void SetState(TrainerState state) => State = state;

    // A PeftModel implements IGradientCheckpointing itself (it forwards to its base model, or throws naming it).
    private static IGradientCheckpointing GradientCheckpointingOf(nn.Module model) => model as IGradientCheckpointing
        ?? throw new NotSupportedException(
            $"TrainingArguments.GradientCheckpointing = true, but {model.GetType().Name} does not implement IGradientCheckpointing");

    internal static bool IsCausalLm(nn.Module model) => model switch
    {
        PreTrainedModel { CanGenerate: true } => true,
        PeftModel pm => IsCausalLm(pm.GetBaseModel()),
        _ => false,
    };
}
