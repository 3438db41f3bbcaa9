namespace Peft.Transformers;

/// <summary>
/// Hooks into the training loop (HF <c>TrainerCallback</c>). Every method has an empty default, so a callback
/// implements only what it needs. Set flags on <c>control</c> to stop, save, evaluate or log.
/// </summary>
public interface ITrainerCallback
{
    /// <summary>Before the first step (HF <c>on_train_begin</c>).</summary>
    void OnTrainBegin(TrainingArguments args, TrainerState state, TrainerControl control) { }
    /// <summary>At the start of an epoch (HF <c>on_epoch_begin</c>).</summary>
    void OnEpochBegin(TrainingArguments args, TrainerState state, TrainerControl control) { }
    /// <summary>After each optimizer step (HF <c>on_step_end</c>).</summary>
    void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control) { }
    /// <summary>At the end of an epoch (HF <c>on_epoch_end</c>).</summary>
    void OnEpochEnd(TrainingArguments args, TrainerState state, TrainerControl control) { }
    /// <summary>When an entry was added to the log history (HF <c>on_log</c>).</summary>
    void OnLog(TrainingArguments args, TrainerState state, TrainerControl control, IReadOnlyDictionary<string, double> logs) { }
    /// <summary>After an evaluation, with its <c>eval_</c> metrics (HF <c>on_evaluate</c>).</summary>
    void OnEvaluate(TrainingArguments args, TrainerState state, TrainerControl control, IReadOnlyDictionary<string, double> metrics) { }
    /// <summary>After a checkpoint was written (HF <c>on_save</c>).</summary>
    void OnSave(TrainingArguments args, TrainerState state, TrainerControl control) { }
    /// <summary>After the last step (HF <c>on_train_end</c>).</summary>
    void OnTrainEnd(TrainingArguments args, TrainerState state, TrainerControl control) { }
}

/// <summary>Calls every callback in order (HF <c>CallbackHandler</c>).</summary>
internal sealed class CallbackList(IEnumerable<ITrainerCallback> callbacks)
{
    public List<ITrainerCallback> Items { get; } = callbacks.ToList();

    public void Each(Action<ITrainerCallback> call)
    {
        foreach (var c in Items) call(c);
    }
}
