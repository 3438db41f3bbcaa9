namespace Peft.Core;

/// <summary>
/// A model that adjusts the inputs of every decoding step before running them (HF / PEFT
/// <c>prepare_inputs_for_generation</c>: prompt learning prepends virtual tokens at the first step, extends the attention
/// mask on every step, supplies a prefix-filled cache). <c>Peft.Transformers.Generation</c> calls
/// <see cref="ForwardGenerationStep"/> instead of <c>forward</c> on a model that implements it; <see cref="PeftModel"/> does.
/// </summary>
public interface IGenerationStepHook
{
    /// <summary>
    /// Runs one decoding step. <paramref name="stepInput"/> is what the loop would give a plain model: the ids not yet
    /// consumed ([N, T_new]: the prompt at the first step, one token afterwards; the whole sequence every step without a
    /// cache), the attention mask of the real sequence so far ([N, T_seen + T_new]), position ids of the new tokens, and
    /// the cache (null at the first step; afterwards the one returned by the first step, which may hold extra positions
    /// the model added). The caller owns the outputs, including a cache the model created (<see cref="ModelOutput.PastKeyValues"/>).
    /// </summary>
    ModelOutput ForwardGenerationStep(ModelInput stepInput);
}
