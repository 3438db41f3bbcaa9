using Peft.Transformers.Tokenization.Pipeline;

namespace Peft.Transformers;

/// <summary>Which end of a sequence receives padding (HF <c>padding_side</c>).</summary>
public enum PaddingSide
{
    /// <summary>Pads after the tokens (HF default).</summary>
    Right,

    /// <summary>Pads before the tokens (decoder-only generation).</summary>
    Left,
}

/// <summary>Which end of a sequence is cut when truncating (HF <c>truncation_side</c>).</summary>
public enum TruncationSide
{
    /// <summary>Removes tokens at the end (HF default).</summary>
    Right,

    /// <summary>Removes tokens at the start.</summary>
    Left,
}

/// <summary>How a pair of sequences is truncated to a maximum length (HF <c>truncation=</c> strategies).</summary>
public enum TruncationStrategy
{
    /// <summary>Removes one token at a time from the longer sequence (HF "longest_first", the default for <c>truncation=True</c>).</summary>
    LongestFirst,

    /// <summary>Truncates only the first sequence (HF "only_first").</summary>
    OnlyFirst,

    /// <summary>Truncates only the second sequence (HF "only_second", used for question answering contexts).</summary>
    OnlySecond,
}

/// <summary>
/// One encoded sequence (or pair) with everything HF's fast <c>Encoding</c> exposes: ids, tokens, type ids,
/// offsets, word ids, sequence ids, special-token mask and attention mask, plus the overflowing windows when
/// truncation with a stride was requested. Offsets are UTF-16 ranges [Start, End) into the .NET string that was
/// encoded (HF reports Python code-point offsets; they agree except after characters outside the BMP). Special
/// tokens added by the post-processor have offsets (0, 0), word id null and sequence id null.
/// </summary>
public sealed class TokenEncoding
{
    internal TokenEncoding(RawEncoding e)
    {
        Ids = e.Ids.ToArray();
        Tokens = e.Tokens.ToArray();
        TypeIds = e.TypeIds.ToArray();
        Offsets = e.Offsets.ToArray();
        WordIds = e.WordIds.ToArray();
        SequenceIds = e.SequenceIds.ToArray();
        SpecialTokensMask = e.SpecialTokensMask.ToArray();
        AttentionMask = Enumerable.Repeat(1, Ids.Count).ToArray();
        Overflowing = e.Overflowing.Select(o => new TokenEncoding(o)).ToArray();
    }

    internal TokenEncoding(int[] ids, string[] tokens, int[] typeIds, (int, int)[] offsets, int?[] wordIds, int?[] seqIds,
        int[] special, int[] attention, IReadOnlyList<TokenEncoding> overflowing)
    {
        Ids = ids;
        Tokens = tokens;
        TypeIds = typeIds;
        Offsets = offsets;
        WordIds = wordIds;
        SequenceIds = seqIds;
        SpecialTokensMask = special;
        AttentionMask = attention;
        Overflowing = overflowing;
    }

    /// <summary>Token ids (HF <c>input_ids</c>).</summary>
    public IReadOnlyList<int> Ids { get; }

    /// <summary>Token strings as the model vocabulary spells them (HF <c>tokens</c>).</summary>
    public IReadOnlyList<string> Tokens { get; }

    /// <summary>Segment ids (HF <c>token_type_ids</c>): 0 for the first sequence, 1 for the second where the template says so.</summary>
    public IReadOnlyList<int> TypeIds { get; }

    /// <summary>UTF-16 [Start, End) range of each token in the encoded text (HF <c>offset_mapping</c>).</summary>
    public IReadOnlyList<(int Start, int End)> Offsets { get; }

    /// <summary>Index of the pre-tokenized word each token comes from, null for added special tokens (HF <c>word_ids()</c>).</summary>
    public IReadOnlyList<int?> WordIds { get; }

    /// <summary>0 or 1 for tokens of the first or second sequence, null for special tokens (HF <c>sequence_ids()</c>).</summary>
    public IReadOnlyList<int?> SequenceIds { get; }

    /// <summary>1 where the post-processor (or padding) added the token (HF <c>special_tokens_mask</c>).</summary>
    public IReadOnlyList<int> SpecialTokensMask { get; }

    /// <summary>1 for real tokens, 0 for padding.</summary>
    public IReadOnlyList<int> AttentionMask { get; }

    /// <summary>The further windows produced by truncation with overflow (HF <c>overflowing</c>), each post-processed.</summary>
    public IReadOnlyList<TokenEncoding> Overflowing { get; }

    /// <summary>Number of tokens.</summary>
    public int Count => Ids.Count;

    /// <summary>The token that covers UTF-16 index <paramref name="charIndex"/> of sequence <paramref name="sequenceIndex"/>,
    /// or null (HF <c>char_to_token</c>).</summary>
    public int? CharToToken(int charIndex, int sequenceIndex = 0)
    {
        for (int i = 0; i < Ids.Count; i++)
            if (SequenceIds[i] == sequenceIndex && Offsets[i].Start <= charIndex && charIndex < Offsets[i].End) return i;
        return null;
    }
}
