namespace Peft.Transformers;

/// <summary>
/// One result of a pipeline, the typed form of the dictionaries HF pipelines return. Each task fills its own fields
/// and leaves the others null:
/// <list type="bullet">
/// <item>text-generation: <see cref="GeneratedText"/> (and <see cref="GeneratedTokenIds"/>).</item>
/// <item>text-classification: <see cref="Label"/>, <see cref="Score"/>.</item>
/// <item>token-classification: <see cref="Entity"/> (HF <c>entity</c>, or <c>entity_group</c> when aggregated),
/// <see cref="Score"/>, <see cref="Index"/> (token index, no aggregation only), <see cref="Word"/>, <see cref="Start"/>, <see cref="End"/>.</item>
/// <item>question-answering: <see cref="Answer"/>, <see cref="Score"/>, <see cref="Start"/>, <see cref="End"/> (character offsets in the context).</item>
/// <item>fill-mask: <see cref="Score"/>, <see cref="Token"/>, <see cref="TokenStr"/>, <see cref="Sequence"/>.</item>
/// <item>feature-extraction: <see cref="Features"/> ([tokens][hidden]).</item>
/// </list>
/// </summary>
public sealed record PipelineResult
{
    /// <summary>Class name from the config's <c>id2label</c> (HF <c>label</c>).</summary>
    public string? Label { get; init; }

    /// <summary>Probability of the result (HF <c>score</c>).</summary>
    public double? Score { get; init; }

    /// <summary>Entity label of a token or word group (HF <c>entity</c> / <c>entity_group</c>).</summary>
    public string? Entity { get; init; }

    /// <summary>Token position in the encoded input (token classification without aggregation; HF <c>index</c>).</summary>
    public int? Index { get; init; }

    /// <summary>Start character offset in the input text (or the QA context).</summary>
    public int? Start { get; init; }

    /// <summary>End character offset (exclusive) in the input text (or the QA context).</summary>
    public int? End { get; init; }

    /// <summary>The token or word text of an entity (HF <c>word</c>).</summary>
    public string? Word { get; init; }

    /// <summary>The answer span text (HF <c>answer</c>).</summary>
    public string? Answer { get; init; }

    /// <summary>Generated text, with or without the prompt (HF <c>generated_text</c>).</summary>
    public string? GeneratedText { get; init; }

    /// <summary>Token ids of the whole generated sequence, prompt included (HF <c>generated_token_ids</c>).</summary>
    public IReadOnlyList<int>? GeneratedTokenIds { get; init; }

    /// <summary>Predicted token id (fill-mask; HF <c>token</c>).</summary>
    public int? Token { get; init; }

    /// <summary>Predicted token text (fill-mask; HF <c>token_str</c>).</summary>
    public string? TokenStr { get; init; }

    /// <summary>The input with the mask filled in, decoded without special tokens (fill-mask; HF <c>sequence</c>).</summary>
    public string? Sequence { get; init; }

    /// <summary>Hidden states [tokens][hidden] (feature-extraction).</summary>
    public float[][]? Features { get; init; }
}
