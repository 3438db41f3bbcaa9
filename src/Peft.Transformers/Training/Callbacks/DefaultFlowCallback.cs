namespace Peft.Transformers;

/// <summary>
/// Turns the logging / evaluation / save strategies into <see cref="TrainerControl"/> flags (HF
/// <c>DefaultFlowCallback</c>): every N steps, at epoch ends, on the first step, and at the last step.
/// </summary>
public sealed class DefaultFlowCallback : ITrainerCallback
{
    /// <inheritdoc />
    public void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control)
    {
        int step = state.GlobalStep;
        if (step == 1 && args.LoggingFirstStep) control.ShouldLog = true;
        if (args.LoggingStrategy == IntervalStrategy.Steps && step % state.LoggingSteps == 0) control.ShouldLog = true;
        if (args.EvalStrategy == IntervalStrategy.Steps && step % state.EvalSteps == 0) control.ShouldEvaluate = true;
        if (args.SaveStrategy == IntervalStrategy.Steps && step % state.SaveSteps == 0) control.ShouldSave = true;
        if (step >= state.MaxSteps)
        {
            control.ShouldTrainingStop = true;
            if (args.SaveStrategy == IntervalStrategy.Steps) control.ShouldSave = true;
        }
    }

    /// <inheritdoc />
    public void OnEpochEnd(TrainingArguments args, TrainerState state, TrainerControl control)
    {
        if (args.LoggingStrategy == IntervalStrategy.Epoch) control.ShouldLog = true;
        if (args.EvalStrategy == IntervalStrategy.Epoch) control.ShouldEvaluate = true;
        if (args.SaveStrategy == IntervalStrategy.Epoch) control.ShouldSave = true;
    }
}
