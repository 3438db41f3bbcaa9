using System.Text.Json;
using Peft.Core.IO;
using System.Text.Json.Serialization;

namespace Peft.Transformers;

/// <summary>
/// The progress of a run (HF <c>TrainerState</c>), written as <c>trainer_state.json</c> in HF's schema: every
/// checkpoint holds one, and a resumed run continues from it.
/// </summary>
public sealed partial class TrainerState
{
    /// <summary>Fractional epochs done (HF <c>epoch</c>).</summary>
    [JsonPropertyName("epoch")] public double Epoch { get; set; }
    /// <summary>Optimizer steps done (HF <c>global_step</c>).</summary>
    [JsonPropertyName("global_step")] public int GlobalStep { get; set; }
    /// <summary>Steps of the whole run (HF <c>max_steps</c>).</summary>
    [JsonPropertyName("max_steps")] public int MaxSteps { get; set; }
    /// <summary>Logging interval in steps (HF <c>logging_steps</c>).</summary>
    [JsonPropertyName("logging_steps")] public int LoggingSteps { get; set; }
    /// <summary>Evaluation interval in steps (HF <c>eval_steps</c>).</summary>
    [JsonPropertyName("eval_steps")] public int EvalSteps { get; set; }
    /// <summary>Save interval in steps (HF <c>save_steps</c>).</summary>
    [JsonPropertyName("save_steps")] public int SaveSteps { get; set; }
    /// <summary>Rows per micro-batch (HF <c>train_batch_size</c>).</summary>
    [JsonPropertyName("train_batch_size")] public int TrainBatchSize { get; set; }
    /// <summary>Epochs of the whole run (HF <c>num_train_epochs</c>).</summary>
    [JsonPropertyName("num_train_epochs")] public int NumTrainEpochs { get; set; }
    /// <summary>Input tokens seen (HF <c>num_input_tokens_seen</c>; counted from attention masks).</summary>
    [JsonPropertyName("num_input_tokens_seen")] public long NumInputTokensSeen { get; set; }
    /// <summary>Not computed (HF <c>total_flos</c>); kept 0 for the schema.</summary>
    [JsonPropertyName("total_flos")] public double TotalFlos { get; set; }
    /// <summary>
    /// One entry per log / evaluation event with HF keys (<c>loss</c>, <c>grad_norm</c>, <c>learning_rate</c>,
    /// <c>epoch</c>, <c>step</c>, <c>eval_*</c>, <c>train_runtime</c>, ...).
    /// </summary>
    [JsonPropertyName("log_history")] public List<IReadOnlyDictionary<string, double>> LogHistory { get; set; } = [];
    /// <summary>Best value of the ranking metric so far (HF <c>best_metric</c>).</summary>
    [JsonPropertyName("best_metric")] public double? BestMetric { get; set; }
    /// <summary>Step of the best evaluation (HF <c>best_global_step</c>).</summary>
    [JsonPropertyName("best_global_step")] public int? BestGlobalStep { get; set; }
    /// <summary>The checkpoint folder of the best evaluation (HF <c>best_model_checkpoint</c>).</summary>
    [JsonPropertyName("best_model_checkpoint")] public string? BestModelCheckpoint { get; set; }
    /// <summary>Always true (one process) (HF <c>is_local_process_zero</c>).</summary>
    [JsonPropertyName("is_local_process_zero")] public bool IsLocalProcessZero { get; set; } = true;
    /// <summary>Always true (one process) (HF <c>is_world_process_zero</c>).</summary>
    [JsonPropertyName("is_world_process_zero")] public bool IsWorldProcessZero { get; set; } = true;
    /// <summary>Always false (HF <c>is_hyper_param_search</c>).</summary>
    [JsonPropertyName("is_hyper_param_search")] public bool IsHyperParamSearch { get; set; }
    /// <summary>Always null (HF <c>trial_name</c>).</summary>
    [JsonPropertyName("trial_name")] public string? TrialName { get; set; }
    /// <summary>Always null (HF <c>trial_params</c>).</summary>
    [JsonPropertyName("trial_params")] public Dictionary<string, double>? TrialParams { get; set; }
    /// <summary>Callback states (HF <c>stateful_callbacks</c>): the control flags, and early stopping's counter.</summary>
    [JsonPropertyName("stateful_callbacks")] public Dictionary<string, JsonElement> StatefulCallbacks { get; set; } = new();

    /// <summary>Serialises in HF's schema (indented, keys sorted as HF's <c>sort_keys=True</c>).</summary>
    public string ToJson()
    {
        var node = JsonSerializer.SerializeToNode(this, TrainingArguments.JsonOptions)!.AsObject();
        var sorted = new System.Text.Json.Nodes.JsonObject();
        foreach (var kv in node.OrderBy(kv => kv.Key, StringComparer.Ordinal)) sorted[kv.Key] = kv.Value?.DeepClone();
        return sorted.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <summary>
    /// Reads <c>trainer_state.json</c>; throws <see cref="InvalidDataException"/> naming <paramref name="path"/> for bad
    /// JSON (duplicate keys, wrong kinds) and for values no run writes (steps outside [0, max_steps], intervals below 1, a non-finite epoch,
    /// a best checkpoint that is not a <c>checkpoint-&lt;step&gt;</c> folder).
    /// </summary>
    public static TrainerState Load(string path)
    {
        var node = ReaderErrors.ParseJson(File.ReadAllText(path), path);
        var opts = new JsonSerializerOptions(TrainingArguments.JsonOptions) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip };
        var state = ReaderErrors.Guard(path, () => node.Deserialize<TrainerState>(opts) ?? throw new InvalidDataException($"{path}: null"));
        string? bad =
            state.MaxSteps < 1 ? $"max_steps {state.MaxSteps}"
            : state.GlobalStep < 0 || state.GlobalStep > state.MaxSteps ? $"global_step {state.GlobalStep} outside [0, {state.MaxSteps}]"
            : !double.IsFinite(state.Epoch) || state.Epoch < 0 ? $"epoch {state.Epoch}"
            : state.LoggingSteps < 1 || state.EvalSteps < 1 || state.SaveSteps < 1 ? $"logging / eval / save steps {state.LoggingSteps} / {state.EvalSteps} / {state.SaveSteps} (each at least 1)"
            : state.TrainBatchSize < 1 || state.NumTrainEpochs < 0 || state.NumInputTokensSeen < 0 ? "a negative count or an empty batch"
            : state.LogHistory is null || state.LogHistory.Any(e => e is null) ? "log_history is null or has a null entry"
            : state.StatefulCallbacks is null ? "stateful_callbacks is null"
            : state.BestGlobalStep is < 0 || state.BestGlobalStep > state.GlobalStep ? $"best_global_step {state.BestGlobalStep}"
            : state.BestModelCheckpoint is { } b && !CheckpointName().IsMatch(Path.GetFileName(b)) ? $"best_model_checkpoint '{b}' is not a checkpoint-<step> folder"
            : null;
        return bad is null ? state : throw new InvalidDataException($"{path}: {bad}");
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^checkpoint-\d+$")]
    private static partial System.Text.RegularExpressions.Regex CheckpointName();
}

/// <summary>Flags callbacks set to steer the loop (HF <c>TrainerControl</c>); the loop resets them after acting.</summary>
public sealed class TrainerControl
{
    /// <summary>Stop training after this step (HF <c>should_training_stop</c>).</summary>
    public bool ShouldTrainingStop { get; set; }
    /// <summary>End the current epoch (HF <c>should_epoch_stop</c>).</summary>
    public bool ShouldEpochStop { get; set; }
    /// <summary>Write a checkpoint now (HF <c>should_save</c>).</summary>
    public bool ShouldSave { get; set; }
    /// <summary>Evaluate now (HF <c>should_evaluate</c>).</summary>
    public bool ShouldEvaluate { get; set; }
    /// <summary>Log now (HF <c>should_log</c>).</summary>
    public bool ShouldLog { get; set; }
}

/// <summary>The result of <see cref="Trainer.Train"/> (HF <c>TrainOutput</c>).</summary>
/// <param name="GlobalStep">Optimizer steps done.</param>
/// <param name="TrainingLoss">Mean logged loss over the run's steps.</param>
/// <param name="Metrics">train_runtime, train_samples_per_second, train_steps_per_second, train_loss, epoch.</param>
public sealed record TrainOutput(int GlobalStep, double TrainingLoss, IReadOnlyDictionary<string, double> Metrics);

/// <summary>What <c>computeMetrics</c> receives (HF <c>EvalPrediction</c>): host arrays concatenated over the eval set.</summary>
/// <param name="Predictions">The logits (float32), flattened row-major, of shape <paramref name="PredictionsShape"/>.</param>
/// <param name="PredictionsShape">[N, C] for classification, [N, T, V] for LM heads (padded to the longest batch with -100).</param>
/// <param name="LabelIds">The labels (int64), flattened, of shape <paramref name="LabelShape"/>; empty without labels.</param>
/// <param name="LabelShape">[N] or [N, T].</param>
public sealed record EvalPrediction(float[] Predictions, long[] PredictionsShape, long[] LabelIds, long[] LabelShape)
{
    /// <summary>Argmax over the last dimension of <see cref="Predictions"/>: one int per row ([N] or [N·T]).</summary>
    public int[] ArgMax()
    {
        int c = (int)PredictionsShape[^1];
        var result = new int[Predictions.Length / Math.Max(1, c)];
        for (int i = 0; i < result.Length; i++)
        {
            int best = 0;
            for (int j = 1; j < c; j++)
                if (Predictions[i * c + j] > Predictions[i * c + best]) best = j;
            result[i] = best;
        }
        return result;
    }

    /// <summary>The labels as ints (one per row, or per token).</summary>
    public int[] Labels => LabelIds.Select(l => (int)l).ToArray();
}

/// <summary>The result of <see cref="Trainer.Predict"/> (HF <c>PredictionOutput</c>).</summary>
public sealed record PredictionOutput(EvalPrediction Prediction, IReadOnlyDictionary<string, double> Metrics)
{
    /// <summary>The predictions (logits), flattened; see <see cref="EvalPrediction.PredictionsShape"/>.</summary>
    public float[] Predictions => Prediction.Predictions;
    /// <summary>The label ids, flattened.</summary>
    public long[] LabelIds => Prediction.LabelIds;
}

/// <summary>Progress reported through <see cref="IProgress{T}"/> after each step.</summary>
/// <param name="GlobalStep">Steps done.</param>
/// <param name="MaxSteps">Steps of the run.</param>
/// <param name="Epoch">Fractional epoch.</param>
/// <param name="Loss">Loss of the last step.</param>
/// <param name="LearningRate">The lr of the next step.</param>
/// <param name="StepsPerSecond">Throughput since the run (or resume) started.</param>
/// <param name="Eta">Estimated time left.</param>
public sealed record TrainerProgress(int GlobalStep, int MaxSteps, double Epoch, double Loss, double LearningRate, double StepsPerSecond, TimeSpan Eta);
