namespace Peft.Transformers;

/// <summary>
/// What a pipeline needs from a tokenizer. The library's <c>PreTrainedTokenizer</c> is adapted automatically
/// by the pipeline factories; implement it to plug in another tokenizer.
/// </summary>
public interface IPipelineTokenizer
{
    /// <summary>
    /// Encodes <paramref name="text"/> (and <paramref name="pair"/> as a second sequence) with character offsets.
    /// With <paramref name="maxLength"/>, truncates to that many tokens (only the second sequence when a pair is given);
    /// with <paramref name="stride"/> &gt; 0 the cut-off part of the second sequence comes back as further windows in
    /// <see cref="PipelineEncoding.Overflowing"/>, overlapping by <paramref name="stride"/> tokens.
    /// </summary>
    PipelineEncoding Encode(string text, string? pair = null, bool addSpecialTokens = true, int? maxLength = null, int stride = 0);

    /// <summary>Decodes ids to text (HF <c>decode</c>).</summary>
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens);

    /// <summary>The vocabulary token of an id (HF <c>convert_ids_to_tokens</c>), or null.</summary>
    string? IdToToken(int id);

    /// <summary>Unknown-token id, or null.</summary>
    int? UnkTokenId { get; }

    /// <summary>Mask-token id (masked LM), or null.</summary>
    int? MaskTokenId { get; }

    /// <summary>Padding id, or null.</summary>
    int? PadTokenId { get; }

    /// <summary>CLS id (question answering keeps it as the "no answer" position), or null.</summary>
    int? ClsTokenId { get; }

    /// <summary>True when the model marks word continuations with a prefix (WordPiece "##"): the HF sub-word test then compares token and text lengths.</summary>
    bool HasContinuingSubwordPrefix { get; }
}

/// <summary>One encoded input with its alignment to the text.</summary>
/// <param name="Ids">Token ids.</param>
/// <param name="Offsets">Character span [start, end) of each token in its own sequence's text ((0, 0) for special tokens).</param>
/// <param name="SpecialTokensMask">True for tokens added by the post-processor ([CLS], [SEP], &lt;s&gt;, ...).</param>
/// <param name="SequenceIds">0 or 1 for tokens of the first or second sequence, null for special tokens.</param>
/// <param name="TypeIds">Token type (segment) ids.</param>
/// <param name="WordIds">Pre-tokenizer word index of each token (null for special tokens), when the tokenizer knows it;
/// when null, pipelines derive word boundaries from the offsets as HF's fallback heuristic does.</param>
/// <param name="Overflowing">Further windows of a truncated pair (question answering over long contexts), or null.</param>
public sealed record PipelineEncoding(
    IReadOnlyList<int> Ids,
    IReadOnlyList<(int Start, int End)> Offsets,
    IReadOnlyList<bool> SpecialTokensMask,
    IReadOnlyList<int?> SequenceIds,
    IReadOnlyList<int> TypeIds,
    IReadOnlyList<int?>? WordIds = null,
    IReadOnlyList<PipelineEncoding>? Overflowing = null);
