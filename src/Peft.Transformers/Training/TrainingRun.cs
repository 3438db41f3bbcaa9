using Peft.Datasets;
using TorchSharp;
using static TorchSharp.torch;
using Peft.Transformers.Optimization;

namespace Peft.Transformers;

/// <summary>
/// The live objects of one <see cref="Trainer.Train"/> call (HF <c>_inner_training_loop</c>'s locals): data loader,
/// optimizer, schedule, trainable parameters, the data position and the loss accumulated since the last log. Built
/// fresh or from a checkpoint; owns the optimizer state and master weights.
/// </summary>
internal sealed class TrainingRun : IDisposable
{
    private readonly Trainer _trainer;
    private readonly TrainableParameters _trainable;
    private readonly TrainerOptimizer _optimizer;
    private readonly LrSchedule _schedule;
    private readonly int _dataSeed;
    private double _lossSinceLog;
    private double _lastGradNorm = double.NaN;

    private TrainingRun(Trainer trainer, Dataset train)
    {
        _trainer = trainer;
        var args = trainer.Args;
        _dataSeed = args.DataSeed ?? args.Seed;
        Loader = new TrainDataLoader(train, trainer.Collator, args.PerDeviceTrainBatchSize, args.DataLoaderShuffle, _dataSeed, args.DataloaderDropLast, trainer.KeepColumns, trainer.Parallel);
        if (Loader.BatchesPerEpoch == 0)
            throw new ArgumentException($"The training set has {train.NumRows} rows: no batch of {args.PerDeviceTrainBatchSize} (DataloaderDropLast = {args.DataloaderDropLast})", nameof(train));
        int updatesPerEpoch = Math.Max(1, (Loader.BatchesPerEpoch + args.GradientAccumulationSteps - 1) / args.GradientAccumulationSteps);
        int maxSteps = args.MaxSteps > 0 ? args.MaxSteps : (int)Math.Ceiling(args.NumTrainEpochs * updatesPerEpoch);
        int epochs = args.MaxSteps > 0 ? (maxSteps + updatesPerEpoch - 1) / updatesPerEpoch : (int)Math.Ceiling(args.NumTrainEpochs);
        trainer.SetState(new TrainerState
        {
            MaxSteps = maxSteps, NumTrainEpochs = epochs, TrainBatchSize = args.PerDeviceTrainBatchSize,
            LoggingSteps = TrainingArguments.ResolveSteps(args.LoggingSteps, maxSteps),
            EvalSteps = TrainingArguments.ResolveSteps(args.EvalSteps ?? args.LoggingSteps, maxSteps),
            SaveSteps = TrainingArguments.ResolveSteps(args.SaveSteps, maxSteps),
        });
        trainer.Model.train();
        _trainable = new TrainableParameters(trainer.Model, args.Bf16 ? ScalarType.BFloat16 : null);
        var groups = DecayRule.Groups(_trainable.ForOptimizer, args.WeightDecay, trainer.Model);
        _optimizer = args.Optim == "sgd" ? new Sgd(groups) : new AdamW(groups, args.AdamBeta1, args.AdamBeta2, args.AdamEpsilon);
        _schedule = new LrSchedule(args.LrSchedulerType, args.LearningRate, args.GetWarmupSteps(maxSteps), maxSteps, args.LrSchedulerKwargs);
        CudaGraphTrainStep? graph = null;
        if (args.CudaGraphs || trainer.GraphFormWithoutCapture)
        {
            if (args.CudaGraphs && trainer.Device.type != DeviceType.CUDA)
                throw new ArgumentException($"TrainingArguments.CudaGraphs = true: the Trainer runs on {trainer.Device}; CUDA graphs need a CUDA device", nameof(args));
            if (_optimizer is not AdamW)
                throw new ArgumentException($"TrainingArguments.CudaGraphs = true needs AdamW; Optim = {args.Optim}", nameof(args));
            if (trainer.Parallel.WorldSize > 1)
                throw new NotSupportedException($"TrainingArguments.CudaGraphs = true with {trainer.Parallel.WorldSize} processes: data-parallel steps all-reduce between backward and the update and are not captured; turn CudaGraphs off");
            graph = new CudaGraphTrainStep(trainer.Model, (AdamW)_optimizer, _trainable.ForOptimizer.Select(p => (Tensor)p.Param).ToList(), args.MaxGradNorm,
                useGraphs: !trainer.GraphFormWithoutCapture, gradientsToMasters: _trainable.GradientsToMasters, mastersToModel: _trainable.MastersToModel);
        }
        Step = new TrainStep(trainer.Model, _trainable, _optimizer, _schedule, args.MaxGradNorm, trainer.Device, trainer.LabelNames, Trainer.IsCausalLm(trainer.Model), trainer.Parallel, graph);
    }

    public TrainDataLoader Loader { get; }

    public TrainStep Step { get; }

    /// <summary>The epoch the loop is in.</summary>
    public int Epoch { get; private set; }

    /// <summary>Micro-batches of <see cref="Epoch"/> already consumed.</summary>
    public int BatchInEpoch { get; private set; }

    public int LastLoggedStep { get; private set; }

    /// <summary>Sum of all step losses of the run (HF <c>_total_loss_scalar</c>).</summary>
    public double TotalLoss { get; private set; }

    public static TrainingRun Start(Trainer trainer, Dataset train, string? resume)
    {
        var run = new TrainingRun(trainer, train);
        try
        {
            if (trainer.Parallel.IsMain) CheckpointFolder.CleanTemporary(trainer.Args.OutputDir);
            if (resume is null)
            {
                torch.manual_seed(trainer.Args.Seed);
                (trainer.Collator as IRandomCollator)?.Seed(trainer.Args.Seed);
            }
            else
            {
                run.Resume(resume == "last"
                    ? CheckpointFolder.Last(trainer.Args.OutputDir) ?? throw new DirectoryNotFoundException($"No checkpoint-* folder in '{trainer.Args.OutputDir}' to resume from")
                    : resume);
            }
            trainer.Parallel.BroadcastFromMain(run._trainable.ForOptimizer.Select(p => p.Param).ToList());
            run._trainable.MastersToModel();
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    private void Resume(string dir)
    {
        CheckpointFolder.Verify(dir);
        string statePath = Path.Combine(dir, "trainer_state.json");
        var saved = TrainerState.Load(statePath);
        var fresh = _trainer.State;
        if (saved.MaxSteps != fresh.MaxSteps)
            throw new InvalidDataException($"{statePath}: the checkpoint was written by a run of {saved.MaxSteps} steps; this run has {fresh.MaxSteps} (change MaxSteps / NumTrainEpochs back, or start fresh)");
        // A path read from a file: only a checkpoint-<step> folder of this run's output folder is used.
        if (saved.BestModelCheckpoint is { } best) saved.BestModelCheckpoint = Path.Combine(_trainer.Args.OutputDir, Path.GetFileName(best));
        var loop = TrainingSnapshot.Load(dir, saved.GlobalStep, _dataSeed, _trainable.ForOptimizer, _optimizer, _schedule, _trainer.Collator);
        if (loop.GlobalBatchSize != 0 && loop.GlobalBatchSize != GlobalBatchSize)
            throw new InvalidDataException($"{Path.Combine(dir, TrainingSnapshot.LoopFile)}: the checkpoint was written with a global batch of {loop.GlobalBatchSize} rows (per-device batch × world size); this run has {GlobalBatchSize} " +
                $"({_trainer.Args.PerDeviceTrainBatchSize} × {_trainer.Parallel.WorldSize}): set PerDeviceTrainBatchSize = {loop.GlobalBatchSize} / world size");
        if (loop.BatchInEpoch > Loader.BatchesPerEpoch)
            throw new InvalidDataException($"{Path.Combine(dir, TrainingSnapshot.LoopFile)}: batch {loop.BatchInEpoch} of an epoch of {Loader.BatchesPerEpoch} batches");
        _trainable.MastersToModel();
        _trainer.SetState(saved);
        (Epoch, BatchInEpoch, _lossSinceLog, LastLoggedStep) = (loop.Epoch, loop.BatchInEpoch, loop.LossSinceLog, loop.LastLoggedStep);
        TotalLoss = loop.TotalLoss;
        if (BatchInEpoch >= Loader.BatchesPerEpoch) NextEpoch();
    }

    /// <summary>Rows of one micro-batch over all ranks; the data position (epoch, batch) is valid for any world size with the same value.</summary>
    private int GlobalBatchSize => _trainer.Args.PerDeviceTrainBatchSize * _trainer.Parallel.WorldSize;

    public void NextEpoch()
    {
        Epoch++;
        BatchInEpoch = 0;
    }

    public void Advance(int microBatches, double loss, double gradNorm)
    {
        BatchInEpoch += microBatches;
        _lossSinceLog += loss;
        TotalLoss += loss;
        _lastGradNorm = gradNorm;
    }

    /// <summary>The HF log entry of the steps since the last log: mean loss, last grad norm, the lr of the next step.</summary>
    public Dictionary<string, double> TakeLogs(TrainerState state)
    {
        var logs = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["loss"] = _lossSinceLog / (state.GlobalStep - LastLoggedStep),
            ["grad_norm"] = _lastGradNorm,
            ["learning_rate"] = _schedule.LastLr,
        };
        _lossSinceLog = 0;
        LastLoggedStep = state.GlobalStep;
        return logs;
    }

    public void SaveSnapshot(string dir) =>
        TrainingSnapshot.Save(dir, _trainable.ForOptimizer, _optimizer, _schedule, _trainer.Collator,
            new TrainingSnapshot.Loop(Epoch, BatchInEpoch, _lossSinceLog, LastLoggedStep, _dataSeed, TotalLoss, GlobalBatchSize));

    /// <summary>Loads the trainable weights of a checkpoint into the model (load_best_model_at_end).</summary>
    public void LoadWeights(string dir)
    {
        CheckpointFolder.Verify(dir);
        TrainingSnapshot.LoadWeights(Path.Combine(dir, TrainingSnapshot.TrainableFile), _trainable.ForOptimizer);
        _trainable.MastersToModel();
    }

    public void Dispose()
    {
        Step.Dispose();
        _optimizer.Dispose();
        _trainable.Dispose();
    }
}
