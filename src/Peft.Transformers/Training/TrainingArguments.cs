using System.Text.Json;
using System.Text.Json.Serialization;

namespace Peft.Transformers;

/// <summary>
/// The settings of a <see cref="Trainer"/> run (HF <c>TrainingArguments</c>): init-only, PascalCase names of the HF
/// fields, serialised with the HF snake_case keys (<c>training_args.json</c>). Defaults are HF's. Values the Trainer
/// cannot honour fail in <see cref="Validate"/> (called by the Trainer's constructor) with the field named.
/// </summary>
public sealed record TrainingArguments
{
    /// <summary>Where checkpoints, <c>trainer_state.json</c> and logs go (HF <c>output_dir</c>).</summary>
    [JsonPropertyName("output_dir")] public string OutputDir { get; init; } = "trainer_output";
    /// <summary>
    /// HF 4's <c>overwrite_output_dir</c> (removed in transformers 5); kept for old configs, written only when true.
    /// Checkpoints in <see cref="OutputDir"/> are never deleted because of it.
    /// </summary>
    [JsonPropertyName("overwrite_output_dir"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public bool OverwriteOutputDir { get; init; }
    /// <summary>Epochs to train when <see cref="MaxSteps"/> is not positive (HF <c>num_train_epochs</c>, default 3).</summary>
    [JsonPropertyName("num_train_epochs")] public double NumTrainEpochs { get; init; } = 3;
    /// <summary>Optimizer steps to train; overrides <see cref="NumTrainEpochs"/> when positive (HF <c>max_steps</c>, default -1).</summary>
    [JsonPropertyName("max_steps")] public int MaxSteps { get; init; } = -1;
    /// <summary>Rows per micro-batch in training (HF <c>per_device_train_batch_size</c>, default 8).</summary>
    [JsonPropertyName("per_device_train_batch_size")] public int PerDeviceTrainBatchSize { get; init; } = 8;
    /// <summary>Rows per batch in evaluation / prediction (HF <c>per_device_eval_batch_size</c>, default 8).</summary>
    [JsonPropertyName("per_device_eval_batch_size")] public int PerDeviceEvalBatchSize { get; init; } = 8;
    /// <summary>Micro-batches per optimizer step (HF <c>gradient_accumulation_steps</c>, default 1).</summary>
    [JsonPropertyName("gradient_accumulation_steps")] public int GradientAccumulationSteps { get; init; } = 1;
    /// <summary>Peak learning rate (HF <c>learning_rate</c>, default 5e-5).</summary>
    [JsonPropertyName("learning_rate")] public double LearningRate { get; init; } = 5e-5;
    /// <summary>Decoupled weight decay, not applied to biases and norm weights (HF <c>weight_decay</c>, default 0).</summary>
    [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; }
    /// <summary>AdamW beta1 (HF <c>adam_beta1</c>, default 0.9).</summary>
    [JsonPropertyName("adam_beta1")] public double AdamBeta1 { get; init; } = 0.9;
    /// <summary>AdamW beta2 (HF <c>adam_beta2</c>, default 0.999).</summary>
    [JsonPropertyName("adam_beta2")] public double AdamBeta2 { get; init; } = 0.999;
    /// <summary>AdamW epsilon (HF <c>adam_epsilon</c>, default 1e-8).</summary>
    [JsonPropertyName("adam_epsilon")] public double AdamEpsilon { get; init; } = 1e-8;
    /// <summary>Gradient clipping norm; 0 or less turns clipping off (HF <c>max_grad_norm</c>, default 1.0).</summary>
    [JsonPropertyName("max_grad_norm")] public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>The learning-rate schedule (HF <c>lr_scheduler_type</c>, default linear).</summary>
    [JsonPropertyName("lr_scheduler_type")] public SchedulerType LrSchedulerType { get; init; } = SchedulerType.Linear;
    /// <summary>Extra schedule settings (HF <c>lr_scheduler_kwargs</c>): <c>num_cycles</c>, <c>power</c>, <c>lr_end</c>, <c>timescale</c>.</summary>
    [JsonPropertyName("lr_scheduler_kwargs")] public IReadOnlyDictionary<string, double>? LrSchedulerKwargs { get; init; }
    /// <summary>Warm-up steps; a value in (0, 1) is a fraction of the total steps, as transformers v5 accepts (HF <c>warmup_steps</c>).</summary>
    [JsonPropertyName("warmup_steps")] public double WarmupSteps { get; init; }
    /// <summary>
    /// Warm-up as a fraction of the total steps, used when <see cref="WarmupSteps"/> is 0 (HF 4's <c>warmup_ratio</c>;
    /// transformers 5 takes the fraction in <c>warmup_steps</c>). Written only when set.
    /// </summary>
    [JsonPropertyName("warmup_ratio"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public double WarmupRatio { get; init; }
    /// <summary>When to log (HF <c>logging_strategy</c>, default steps).</summary>
    [JsonPropertyName("logging_strategy")] public IntervalStrategy LoggingStrategy { get; init; } = IntervalStrategy.Steps;
    /// <summary>Log every N steps; a value in (0, 1) is a fraction of the total steps (HF <c>logging_steps</c>, default 500).</summary>
    [JsonPropertyName("logging_steps")] public double LoggingSteps { get; init; } = 500;
    /// <summary>Also log after the first step (HF <c>logging_first_step</c>).</summary>
    [JsonPropertyName("logging_first_step")] public bool LoggingFirstStep { get; init; }
    /// <summary>When to evaluate (HF <c>eval_strategy</c>, default no).</summary>
    [JsonPropertyName("eval_strategy")] public IntervalStrategy EvalStrategy { get; init; } = IntervalStrategy.No;
    /// <summary>Evaluate every N steps; null = <see cref="LoggingSteps"/> (HF <c>eval_steps</c>).</summary>
    [JsonPropertyName("eval_steps")] public double? EvalSteps { get; init; }
    /// <summary>When to write checkpoints (HF <c>save_strategy</c>, default steps).</summary>
    [JsonPropertyName("save_strategy")] public IntervalStrategy SaveStrategy { get; init; } = IntervalStrategy.Steps;
    /// <summary>Save every N steps (HF <c>save_steps</c>, default 500).</summary>
    [JsonPropertyName("save_steps")] public double SaveSteps { get; init; } = 500;
    /// <summary>Keep at most this many checkpoints (the best one is never deleted); null = all (HF <c>save_total_limit</c>).</summary>
    [JsonPropertyName("save_total_limit")] public int? SaveTotalLimit { get; init; }
    /// <summary>Load the best checkpoint's weights when training ends (HF <c>load_best_model_at_end</c>).</summary>
    [JsonPropertyName("load_best_model_at_end")] public bool LoadBestModelAtEnd { get; init; }
    /// <summary>The metric that ranks checkpoints ("loss" → "eval_loss"); default "loss" when <see cref="LoadBestModelAtEnd"/> (HF <c>metric_for_best_model</c>).</summary>
    [JsonPropertyName("metric_for_best_model")] public string? MetricForBestModel { get; init; }
    /// <summary>Whether larger is better; default: false for metrics ending in "loss", true otherwise (HF <c>greater_is_better</c>).</summary>
    [JsonPropertyName("greater_is_better")] public bool? GreaterIsBetter { get; init; }
    /// <summary>Seed of torch's generator at the start of training (dropout) and of data shuffling (HF <c>seed</c>, default 42).</summary>
    [JsonPropertyName("seed")] public int Seed { get; init; } = 42;
    /// <summary>Seed of the data order only; null = <see cref="Seed"/> (HF <c>data_seed</c>).</summary>
    [JsonPropertyName("data_seed")] public int? DataSeed { get; init; }
    /// <summary>bfloat16 mixed precision: forward under autocast, fp32 master weights (HF <c>bf16</c>).</summary>
    [JsonPropertyName("bf16")] public bool Bf16 { get; init; }
    /// <summary>float16 mixed precision: forward under autocast, fp32 master weights (HF <c>fp16</c>); CUDA only.</summary>
    [JsonPropertyName("fp16")] public bool Fp16 { get; init; }
    /// <summary>Recompute activations in backward (HF <c>gradient_checkpointing</c>); the model must implement <c>IGradientCheckpointing</c>.</summary>
    [JsonPropertyName("gradient_checkpointing")] public bool GradientCheckpointing { get; init; }
    /// <summary>Drop dataset columns the model's forward does not take before collating (HF <c>remove_unused_columns</c>, default true).</summary>
    [JsonPropertyName("remove_unused_columns")] public bool RemoveUnusedColumns { get; init; } = true;
    /// <summary>Input keys that hold labels; null = ["labels"] (HF <c>label_names</c>).</summary>
    [JsonPropertyName("label_names")] public IReadOnlyList<string>? LabelNames { get; init; }
    /// <summary>Drop the last incomplete batch of an epoch (HF <c>dataloader_drop_last</c>).</summary>
    [JsonPropertyName("dataloader_drop_last")] public bool DataloaderDropLast { get; init; }
    /// <summary>
    /// The optimizer (HF <c>optim</c>): "adamw_torch" (default), "adamw_torch_fused" (transformers 5's default on
    /// torch ≥ 2.8: the same math, here computed by the same single-tensor update) or "sgd". Both AdamW names run the
    /// same optimizer; on CUDA its multi-tensor form updates bfloat16 / float16 parameters with one fused kernel whose
    /// results are bit-equal to the single-tensor ops (float32 parameters, e.g. the masters of <see cref="Bf16"/>,
    /// run the ops).
    /// </summary>
    [JsonPropertyName("optim")] public string Optim { get; init; } = "adamw_torch";
    /// <summary>Loggers: "none" or "jsonl" (writes <c>output_dir/log_history.jsonl</c>) (HF <c>report_to</c>).</summary>
    [JsonPropertyName("report_to")] public IReadOnlyList<string> ReportTo { get; init; } = ["none"];
    /// <summary>Turn the console progress bar off (HF <c>disable_tqdm</c>).</summary>
    [JsonPropertyName("disable_tqdm")] public bool DisableTqdm { get; init; }
    /// <summary>
    /// Shuffle the training data each epoch (default true). False gives sequential batches (a .NET extension used by
    /// the reference checks; HF always uses a RandomSampler).
    /// </summary>
    [JsonPropertyName("dataloader_shuffle")] public bool DataLoaderShuffle { get; init; } = true;
    /// <summary>Device to train on ("cpu", "cuda", "cuda:1"); null = where the model's parameters are (a .NET extension).</summary>
    [JsonPropertyName("device")] public string? Device { get; init; }
    /// <summary>
    /// Capture each training step once as a CUDA graph and replay it for later batches of the same shapes (a .NET
    /// extension; PyTorch's whole-network <c>torch.cuda.graph</c> recipe with AdamW's <c>capturable=True</c>). One
    /// launch per step instead of hundreds: for small models on fast GPUs, where the host's kernel launches bound the
    /// step. Needs a CUDA device, AdamW, <see cref="GradientAccumulationSteps"/> = 1, one process and no gradient
    /// checkpointing; pad batches to a fixed length (the collator's <c>max_length</c> padding) or every new shape runs
    /// eagerly. The update of bfloat16 / float16 parameters is the eager step's fused AdamW kernel, bit-equal to it;
    /// float32 parameters (and the masters of <see cref="Bf16"/>) use torch's capturable AdamW arithmetic: equal to the
    /// eager step up to rounding. Dropout draws the eager step's masks (the CUDA generator advances per replay).
    /// </summary>
    [JsonPropertyName("cuda_graphs"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public bool CudaGraphs { get; init; }

    /// <summary>Optimizer names this Trainer implements.</summary>
    public static IReadOnlyList<string> SupportedOptimizers { get; } = ["adamw_torch", "adamw_torch_fused", "sgd"];

    /// <summary>The metric key used to rank checkpoints (<c>eval_</c>-prefixed), or null when none is set.</summary>
    [JsonIgnore]
    public string? BestMetricKey
    {
        get
        {
            string? m = MetricForBestModel ?? (LoadBestModelAtEnd ? "loss" : null);
            return m is null ? null : m.StartsWith("eval_", StringComparison.Ordinal) ? m : "eval_" + m;
        }
    }

    /// <summary>Whether a larger <see cref="BestMetricKey"/> is better (HF's default: not for losses).</summary>
    [JsonIgnore]
    public bool GreaterIsBetterResolved => GreaterIsBetter ?? !(BestMetricKey ?? "eval_loss").EndsWith("loss", StringComparison.Ordinal);

    /// <summary>Checks every field; throws <see cref="ArgumentException"/> naming the field and its value.</summary>
    public void Validate()
    {
        static void Fail(string field, object? value, string why) =>
            throw new ArgumentException($"TrainingArguments.{field} = {value ?? "null"}: {why}", field);
        if (string.IsNullOrWhiteSpace(OutputDir)) Fail(nameof(OutputDir), OutputDir, "an output folder is required");
        if (MaxSteps <= 0 && !(NumTrainEpochs > 0)) Fail(nameof(NumTrainEpochs), NumTrainEpochs, "must be > 0 when MaxSteps is not set");
        if (PerDeviceTrainBatchSize <= 0) Fail(nameof(PerDeviceTrainBatchSize), PerDeviceTrainBatchSize, "must be > 0");
        if (PerDeviceEvalBatchSize <= 0) Fail(nameof(PerDeviceEvalBatchSize), PerDeviceEvalBatchSize, "must be > 0");
        if (GradientAccumulationSteps <= 0) Fail(nameof(GradientAccumulationSteps), GradientAccumulationSteps, "must be > 0");
        if (!(LearningRate >= 0) || double.IsInfinity(LearningRate)) Fail(nameof(LearningRate), LearningRate, "must be a finite number >= 0");
        if (!(WeightDecay >= 0)) Fail(nameof(WeightDecay), WeightDecay, "must be >= 0");
        if (!(AdamBeta1 >= 0 && AdamBeta1 < 1)) Fail(nameof(AdamBeta1), AdamBeta1, "must be in [0, 1)");
        if (!(AdamBeta2 >= 0 && AdamBeta2 < 1)) Fail(nameof(AdamBeta2), AdamBeta2, "must be in [0, 1)");
        if (!(AdamEpsilon >= 0)) Fail(nameof(AdamEpsilon), AdamEpsilon, "must be >= 0");
        if (double.IsNaN(MaxGradNorm)) Fail(nameof(MaxGradNorm), MaxGradNorm, "must be a number");
        if (!(WarmupSteps >= 0)) Fail(nameof(WarmupSteps), WarmupSteps, "must be >= 0 (an int, or a fraction in (0, 1))");
        if (WarmupSteps >= 1 && WarmupSteps != Math.Floor(WarmupSteps)) Fail(nameof(WarmupSteps), WarmupSteps, "must be an integer, or a fraction in (0, 1)");
        if (!(WarmupRatio >= 0 && WarmupRatio <= 1)) Fail(nameof(WarmupRatio), WarmupRatio, "must be in [0, 1]");
        CheckSteps(nameof(LoggingSteps), LoggingSteps, LoggingStrategy == IntervalStrategy.Steps);
        CheckSteps(nameof(EvalSteps), EvalSteps ?? LoggingSteps, EvalStrategy == IntervalStrategy.Steps);
        CheckSteps(nameof(SaveSteps), SaveSteps, SaveStrategy == IntervalStrategy.Steps);
        if (SaveTotalLimit is <= 0) Fail(nameof(SaveTotalLimit), SaveTotalLimit, "must be > 0 or null");
        if (LoadBestModelAtEnd && EvalStrategy == IntervalStrategy.No)
            Fail(nameof(EvalStrategy), EvalStrategy, "LoadBestModelAtEnd needs evaluation (EvalStrategy Steps or Epoch)");
        if (LoadBestModelAtEnd && SaveStrategy != EvalStrategy)
            Fail(nameof(SaveStrategy), SaveStrategy, $"LoadBestModelAtEnd needs SaveStrategy equal to EvalStrategy ({EvalStrategy})");
        if (LoadBestModelAtEnd && EvalStrategy == IntervalStrategy.Steps && SaveSteps % (EvalSteps ?? LoggingSteps) != 0)
            Fail(nameof(SaveSteps), SaveSteps, $"LoadBestModelAtEnd needs SaveSteps to be a multiple of EvalSteps ({EvalSteps ?? LoggingSteps})");
        if (Bf16 && Fp16) Fail(nameof(Fp16), Fp16, "Bf16 and Fp16 cannot both be on");
        if (!SupportedOptimizers.Contains(Optim)) Fail(nameof(Optim), Optim, $"supported: {string.Join(", ", SupportedOptimizers)}");
        if (CudaGraphs)
        {
            if (GradientAccumulationSteps != 1) Fail(nameof(GradientAccumulationSteps), GradientAccumulationSteps, "CudaGraphs captures one forward per step: must be 1");
            if (GradientCheckpointing) Fail(nameof(GradientCheckpointing), GradientCheckpointing, "CudaGraphs cannot capture the recomputation's RNG-state copies: turn one of them off");
            if (Optim == "sgd") Fail(nameof(Optim), Optim, "CudaGraphs needs AdamW (adamw_torch or adamw_torch_fused)");
            if (Device is { } d && !d.StartsWith("cuda", StringComparison.Ordinal)) Fail(nameof(Device), d, "CudaGraphs needs a CUDA device");
        }
        foreach (var r in ReportTo)
            if (r is not ("none" or "jsonl")) Fail(nameof(ReportTo), r, "supported: \"none\", \"jsonl\"");
        if (LrSchedulerKwargs is not null)
        {
            string[] known = LrSchedulerType switch
            {
                SchedulerType.Cosine or SchedulerType.CosineWithRestarts => ["num_cycles"],
                SchedulerType.Polynomial => ["power", "lr_end"],
                SchedulerType.InverseSqrt => ["timescale"],
                _ => [],
            };
            foreach (var k in LrSchedulerKwargs.Keys)
                if (!known.Contains(k)) Fail(nameof(LrSchedulerKwargs), k, $"not a setting of {LrSchedulerType} (known: [{string.Join(", ", known)}])");
        }
        if (Device is not null)
        {
            try { _ = new TorchSharp.torch.Device(Device); }
            catch (Exception e) when (e is ArgumentException or FormatException) { Fail(nameof(Device), Device, "not a device name such as \"cpu\" or \"cuda:0\""); }
        }
    }

    private static void CheckSteps(string field, double value, bool used)
    {
        if (!used) return;
        if (!(value > 0)) throw new ArgumentException($"TrainingArguments.{field} = {value}: must be > 0 (an int, or a fraction in (0, 1) of the total steps)", field);
        if (value > 1 && value != Math.Floor(value)) throw new ArgumentException($"TrainingArguments.{field} = {value}: must be an integer, or a fraction in (0, 1)", field);
    }

    /// <summary>A step interval: a fraction in (0, 1) becomes ceil(fraction · maxSteps), as HF does.</summary>
    internal static int ResolveSteps(double value, int maxSteps) =>
        value < 1 ? Math.Max(1, (int)Math.Ceiling(value * maxSteps)) : (int)value;

    /// <summary>The warm-up steps for a run of <paramref name="totalSteps"/> (HF <c>get_warmup_steps</c>).</summary>
    public int GetWarmupSteps(int totalSteps) =>
        WarmupSteps >= 1 ? (int)WarmupSteps
        : WarmupSteps > 0 ? (int)Math.Ceiling(totalSteps * WarmupSteps)
        : (int)Math.Ceiling(totalSteps * WarmupRatio);

    /// <summary>The HF JSON of these arguments (<c>training_args.json</c>), indented.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reads arguments written by <see cref="ToJson"/>; unknown keys throw naming the key.</summary>
    public static TrainingArguments FromJson(string json) =>
        JsonSerializer.Deserialize<TrainingArguments>(json, JsonOptions) ?? throw new JsonException("training_args.json is null");

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}
