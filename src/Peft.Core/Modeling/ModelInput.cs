using TorchSharp;

namespace Peft.Core;

/// <summary>
/// The inputs of a model's forward pass, named as the keyword arguments of a Hugging Face model's
/// <c>forward(...)</c>. All tensors are owned by the caller; the model never disposes them.
/// </summary>
public sealed record ModelInput
{
    /// <summary>Token ids, int64 [B, T]. HF <c>input_ids</c>.</summary>
    public torch.Tensor? InputIds { get; init; }

    /// <summary>1 for real tokens, 0 for padding (either side), int64 [B, T] or [B, past + T] with a cache. HF <c>attention_mask</c>.</summary>
    public torch.Tensor? AttentionMask { get; init; }

    /// <summary>Segment ids, int64 [B, T] (BERT). HF <c>token_type_ids</c>.</summary>
    public torch.Tensor? TokenTypeIds { get; init; }

    /// <summary>Position ids, int64 [B, T]; derived from the mask/cache when null. HF <c>position_ids</c>.</summary>
    public torch.Tensor? PositionIds { get; init; }

    /// <summary>
    /// Labels: token ids [B, T] for causal/masked LM (−100 = ignored; the causal loss shifts internally), class ids
    /// int64 [B] (or float [B, C] for regression / multi-label) for sequence classification, [B, T] for token
    /// classification. HF <c>labels</c>.
    /// </summary>
    public torch.Tensor? Labels { get; init; }

    /// <summary>Input embeddings [B, T, H] used instead of <see cref="InputIds"/>. HF <c>inputs_embeds</c>.</summary>
    public torch.Tensor? InputsEmbeds { get; init; }

    /// <summary>Start positions [B] for question answering losses. HF <c>start_positions</c>.</summary>
    public torch.Tensor? StartPositions { get; init; }

    /// <summary>End positions [B] for question answering losses. HF <c>end_positions</c>.</summary>
    public torch.Tensor? EndPositions { get; init; }

    /// <summary>
    /// The key/value cache of earlier positions (HF <c>past_key_values</c>). The model appends this step's keys and
    /// values to it in place and returns the same object in <see cref="ModelOutput.PastKeyValues"/>. Owned by the caller.
    /// </summary>
    public KeyValueCache? PastKeyValues { get; init; }

    /// <summary>When true and <see cref="PastKeyValues"/> is null, the model creates a cache and returns it. HF <c>use_cache</c>.</summary>
    public bool UseCache { get; init; }

    /// <summary>
    /// Causal LM heads: compute logits only for the last this many positions (0 = all). HF <c>logits_to_keep</c>
    /// (an int); generation passes 1 so the prompt step does not project every prompt position onto the vocabulary.
    /// Not combinable with <see cref="Labels"/> (the loss needs every position).
    /// </summary>
    public int LogitsToKeep { get; init; }

    /// <summary>Return the hidden states of every layer (embeddings first). HF <c>output_hidden_states</c>.</summary>
    public bool OutputHiddenStates { get; init; }

    /// <summary>
    /// Per-row adapter names for mixed-adapter batches (HF PEFT's <c>adapter_names</c> forward argument); null = the
    /// active adapters for every row. Read by PEFT tuner layers, ignored by base models.
    /// </summary>
    public IReadOnlyList<string>? AdapterNames { get; init; }
}
