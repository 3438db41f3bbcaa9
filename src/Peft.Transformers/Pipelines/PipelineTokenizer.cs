namespace Peft.Transformers;

/// <summary>Adapts the library's <see cref="PreTrainedTokenizer"/> to <see cref="IPipelineTokenizer"/>.</summary>
public sealed class PipelineTokenizer : IPipelineTokenizer
{
    private readonly PreTrainedTokenizer _tok;
    private readonly Lazy<bool> _wordPiece;

    private PipelineTokenizer(PreTrainedTokenizer tokenizer)
    {
        _tok = tokenizer;
        _wordPiece = new(() => tokenizer.GetVocab().Keys.Any(k => k.StartsWith("##", StringComparison.Ordinal) && k.Length > 2));
    }

    /// <summary>Wraps <paramref name="tokenizer"/> (not copied: later changes to it are seen).</summary>
    public static PipelineTokenizer From(PreTrainedTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return new PipelineTokenizer(tokenizer);
    }

    /// <summary>The wrapped tokenizer.</summary>
    public PreTrainedTokenizer Tokenizer => _tok;

    /// <inheritdoc />
    public PipelineEncoding Encode(string text, string? pair = null, bool addSpecialTokens = true, int? maxLength = null, int stride = 0)
    {
        var e = pair is null
            ? _tok.EncodeWithOffsets(text, addSpecialTokens)
            : _tok.EncodePair(text, pair, addSpecialTokens, maxLength, TruncationStrategy.OnlySecond, stride, returnOverflowing: stride > 0);
        return Convert(e);
    }

    private static PipelineEncoding Convert(TokenEncoding e) =>
        new(e.Ids, e.Offsets, e.SpecialTokensMask.Select(x => x != 0).ToArray(), e.SequenceIds, e.TypeIds, e.WordIds,
            e.Overflowing.Count > 0 ? e.Overflowing.Select(Convert).ToArray() : null);

    /// <inheritdoc />
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens) => _tok.Decode(ids, skipSpecialTokens);

    /// <inheritdoc />
    public string? IdToToken(int id) => _tok.ConvertIdsToTokens([id])[0];

    /// <inheritdoc />
    public int? UnkTokenId => _tok.UnkTokenId;

    /// <inheritdoc />
    public int? MaskTokenId => _tok.MaskTokenId;

    /// <inheritdoc />
    public int? PadTokenId => _tok.PadTokenId;

    /// <inheritdoc />
    public int? ClsTokenId => _tok.ClsTokenId;

    /// <inheritdoc />
    public bool HasContinuingSubwordPrefix => _wordPiece.Value;
}
