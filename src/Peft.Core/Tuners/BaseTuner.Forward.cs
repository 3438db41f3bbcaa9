using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

public abstract partial class BaseTuner
{
    /// <summary>
    /// Runs the adapted model on <paramref name="input"/> (PEFT <c>PeftModel.forward</c>): <see cref="PrepareInput"/>,
    /// then the wrapped model. The caller owns the outputs (and a cache a method created, in
    /// <see cref="ModelOutput.PastKeyValues"/>).
    /// </summary>
    public virtual ModelOutput Forward(ModelInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return RunModel(PrepareInput(input));
    }

    /// <summary>
    /// One decoding step of generation (HF <c>prepare_inputs_for_generation</c> followed by the model's forward):
    /// <see cref="PrepareInputsForGeneration"/>, then the wrapped model. Called by the generation loop through
    /// <see cref="IGenerationStepHook"/> on <see cref="PeftModel"/>.
    /// </summary>
    public virtual ModelOutput ForwardGenerationStep(ModelInput stepInput)
    {
        ArgumentNullException.ThrowIfNull(stepInput);
        return RunModel(PrepareInputsForGeneration(stepInput));
    }

    /// <summary>
    /// Transforms the inputs of a forward call before the wrapped model runs. Layer-injecting methods need nothing
    /// (identity); prompt learning prepends virtual-token embeddings (<see cref="IPreTrainedModel.GetInputEmbeddings"/>
    /// and <see cref="ModelInput.InputsEmbeds"/>), extends <see cref="ModelInput.AttentionMask"/> and
    /// <see cref="ModelInput.Labels"/> (with −100), drops <see cref="ModelInput.PositionIds"/>, or supplies a
    /// <see cref="KeyValueCache"/> already filled with prefix keys / values. New tensors belong to the caller's dispose scope.
    /// </summary>
    protected virtual ModelInput PrepareInput(ModelInput input) => input;

    /// <summary>
    /// Whether <see cref="PrepareInput"/> / <see cref="PrepareInputsForGeneration"/> change the inputs (prompt learning:
    /// virtual tokens, prefixes, an extended mask). False for layer-injecting methods, whose forward is the wrapped
    /// model's forward with the adapters inside it: generation may then run the wrapped model's own decoding paths
    /// (static KV cache, CUDA graphs).
    /// </summary>
    public virtual bool TransformsInputs => false;

    /// <summary>
    /// Transforms the inputs of one decoding step (HF / PEFT <c>prepare_inputs_for_generation</c>). The generation loop
    /// passes what it would give a plain model: the ids not yet consumed ([N, T_new]; the whole prompt at the first
    /// step), the attention mask of the whole sequence so far ([N, T_seen + T_new], real tokens only), position ids of
    /// the new tokens, and the cache (<c>null</c> at the first step, or every step without caching; afterwards the cache
    /// the model returned at the first step, which may hold positions the method added: virtual tokens, prefixes).
    /// Default: <see cref="PrepareInput"/> when no cache has been filled yet, else the step unchanged. Prompt learning
    /// overrides it to prepend virtual tokens only at the first step and to extend the mask on every step.
    /// </summary>
    protected virtual ModelInput PrepareInputsForGeneration(ModelInput stepInput) =>
        stepInput.PastKeyValues is { } cache && cache.GetSeqLength() > 0 ? stepInput : PrepareInput(stepInput);

    /// <summary>
    /// Runs the wrapped model without any transformation (PEFT <c>BaseTuner.forward</c>). A
    /// <c>Module&lt;ModelInput, ModelOutput&gt;</c> gets the input unchanged; a <c>Module&lt;Tensor, Tensor&gt;</c> gets
    /// <see cref="ModelInput.InputsEmbeds"/> (else <see cref="ModelInput.InputIds"/>) and returns <see cref="ModelOutput.Logits"/>.
    /// </summary>
    protected ModelOutput RunModel(ModelInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        switch (Model)
        {
            case nn.Module<ModelInput, ModelOutput> m:
                return m.forward(input);
            case nn.Module<Tensor, Tensor> t:
                var x = input.InputsEmbeds ?? input.InputIds ?? throw new ArgumentException("ModelInput needs InputsEmbeds or InputIds for a Module<Tensor, Tensor>.", nameof(input));
                return new ModelOutput { Logits = t.forward(x) };
            default:
                throw new NotSupportedException($"Cannot run a {Model.GetType().Name}: use a Module<ModelInput, ModelOutput> or Module<Tensor, Tensor>.");
        }
    }

    /// <summary>
    /// The method's extra loss term for a training micro-batch (see <see cref="ITrainingHooks.LossTerm"/>; PEFT adds
    /// AdaLoRA's orthogonal regulariser in <c>AdaLoraModel.forward</c>). Default: null (nothing added).
    /// </summary>
    public virtual Tensor? LossTerm() => null;

    /// <summary>Called after each optimizer step, before zero_grad (see <see cref="ITrainingHooks.OnOptimizerStep"/>; AdaLoRA's <c>update_and_allocate</c>). Default: nothing.</summary>
    public virtual void OnOptimizerStep(int globalStep) { }
}
