using TorchSharp;

namespace Peft.Core;

/// <summary>
/// The outputs of a model's forward pass (HF <c>ModelOutput</c> subclasses, flattened). Tensors are created in the
/// caller's dispose scope (the model moves them out of its own scope): the caller owns and disposes them.
/// </summary>
public sealed record ModelOutput
{
    /// <summary>Prediction scores: [B, T, V] for LM heads, [B, C] for sequence classification, [B, T, C] for token classification.</summary>
    public torch.Tensor? Logits { get; init; }

    /// <summary>Scalar loss when labels were given.</summary>
    public torch.Tensor? Loss { get; init; }

    /// <summary>Hidden states after the final layer (after the final norm where the architecture has one), [B, T, H].</summary>
    public torch.Tensor? LastHiddenState { get; init; }

    /// <summary>Pooled output [B, H] (BERT pooler), when the model has one.</summary>
    public torch.Tensor? PoolerOutput { get; init; }

    /// <summary>Question answering start scores [B, T].</summary>
    public torch.Tensor? StartLogits { get; init; }

    /// <summary>Question answering end scores [B, T].</summary>
    public torch.Tensor? EndLogits { get; init; }

    /// <summary>Hidden states of the embeddings and of every layer (L + 1 tensors [B, T, H]) when requested.</summary>
    public IReadOnlyList<torch.Tensor>? HiddenStates { get; init; }

    /// <summary>The key/value cache, updated with this step (same object as the input's, or a new one with use_cache).</summary>
    public KeyValueCache? PastKeyValues { get; init; }
}
