using TorchSharp;

namespace Peft.Core;

/// <summary>
/// A model whose input-embedding output can be made to require grad while the embedding itself is frozen (HF
/// <c>enable_input_require_grads()</c> / <c>disable_input_require_grads()</c>: a forward hook on
/// <c>get_input_embeddings()</c>). PEFT's <c>prepare_model_for_kbit_training</c> turns it on with gradient
/// checkpointing. Implemented by <c>Peft.Transformers.PreTrainedModel</c>.
/// </summary>
public interface IInputRequireGrads
{
    /// <summary>Whether the hook is installed.</summary>
    bool InputRequireGrads { get; }

    /// <summary>Installs the hook (idempotent): every forward's token embeddings then require grad.</summary>
    void EnableInputRequireGrads();

    /// <summary>Removes the hook.</summary>
    void DisableInputRequireGrads();
}
