using TorchSharp;

namespace Peft.Core;

/// <summary>
/// What a training loop asks of a model whose PEFT method takes part in training (AdaLoRA's orthogonal regulariser
/// and rank allocator). <c>Peft.Transformers.Trainer</c> calls it on any model that implements it (a
/// <see cref="PeftModel"/> forwards to its tuner); a hand-written loop can call it the same way. Methods without
/// such needs implement nothing: <see cref="LossTerm"/> returns null and <see cref="OnOptimizerStep"/> does nothing.
/// </summary>
public interface ITrainingHooks
{
    /// <summary>
    /// An extra term added to the loss of every training micro-batch before backward (PEFT adds AdaLoRA's
    /// <c>orth_reg_weight · R</c> to <c>outputs.loss</c> the same way), computed from the current parameters and
    /// differentiable; a scalar tensor in the caller's dispose scope, or null when the method adds nothing.
    /// </summary>
    torch.Tensor? LossTerm();

    /// <summary>
    /// Called after each optimizer step (and after the lr scheduler step), before the gradients are zeroed, with the
    /// 0-based index of the step just taken (PEFT <c>update_and_allocate(global_step)</c>). Gradients are still
    /// present, so a method can read them (AdaLoRA's sensitivity |w · ∇w|).
    /// </summary>
    void OnOptimizerStep(int globalStep);
}

/// <summary>
/// A model that can recompute activations in backward instead of keeping them (HF
/// <c>gradient_checkpointing_enable()</c>): each decoder layer's forward is re-run during backward, trading compute
/// for memory. Implemented by <c>Peft.Transformers.PreTrainedModel</c>; a <see cref="PeftModel"/> forwards to its
/// base model.
/// </summary>
public interface IGradientCheckpointing
{
    /// <summary>Whether checkpointing is on (HF <c>is_gradient_checkpointing</c>).</summary>
    bool IsGradientCheckpointing { get; }

    /// <summary>Turns checkpointing on (HF <c>gradient_checkpointing_enable()</c>). Has effect only in training mode.</summary>
    void GradientCheckpointingEnable();

    /// <summary>Turns checkpointing off (HF <c>gradient_checkpointing_disable()</c>).</summary>
    void GradientCheckpointingDisable();
}
