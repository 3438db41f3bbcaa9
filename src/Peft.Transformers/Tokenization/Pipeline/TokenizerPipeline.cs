using System.Text.Json.Nodes;

namespace Peft.Transformers.Tokenization.Pipeline;

/// <summary>
/// The tokenizer.json pipeline (HF tokenizers' <c>Tokenizer</c>): added tokens, normalizer, pre-tokenizer, model,
/// post-processor, decoder. Everything here is ours except the WordPiece model search (ML.Tokenizers); see each
/// component's file for why.
/// </summary>
internal sealed class TokenizerPipeline
{
    private TokenizerPipeline(JsonObject json, INormalizer? normalizer, IPreTokenizer? preTokenizer, ITokenizerModel model,
        IPostProcessor? postProcessor, IDecoder? decoder, AddedVocabulary added)
    {
        Json = json;
        Normalizer = normalizer;
        PreTokenizer = preTokenizer;
        Model = model;
        PostProcessor = postProcessor;
        Decoder = decoder;
        Added = added;
    }

    /// <summary>The tokenizer.json document this pipeline was built from (written back by SavePretrained).</summary>
    public JsonObject Json { get; }
    public INormalizer? Normalizer { get; }
    public IPreTokenizer? PreTokenizer { get; }
    public ITokenizerModel Model { get; }
    public IPostProcessor? PostProcessor { get; }
    public IDecoder? Decoder { get; }
    public AddedVocabulary Added { get; }

    /// <summary>Builds the pipeline; every unsupported or malformed component fails here, naming it.</summary>
    public static TokenizerPipeline FromJson(JsonObject json, string file)
    {
        var normalizer = Normalizers.FromJson(json["normalizer"], $"{file}: normalizer");
        var pre = PreTokenizers.FromJson(json["pre_tokenizer"], $"{file}: pre_tokenizer");
        var model = Models.FromJson(json["model"], $"{file}: model");
        var post = PostProcessors.FromJson(json["post_processor"], $"{file}: post_processor");
        var decoder = Decoders.FromJson(json["decoder"], $"{file}: decoder");
        var addedList = AddedVocabulary.FromJson(json["added_tokens"], $"{file}: added_tokens");
        return new TokenizerPipeline(json, normalizer, pre, model, post, decoder, new AddedVocabulary(addedList, normalizer));
    }

    /// <summary>The same pipeline with another post-processor (the JSON document is updated so SavePretrained writes it).</summary>
    public TokenizerPipeline WithPostProcessor(JsonObject postProcessor, string file)
    {
        var json = (JsonObject)Json.DeepClone();
        json["post_processor"] = postProcessor;
        var post = PostProcessors.FromJson(postProcessor, $"{file}: post_processor");
        return new TokenizerPipeline(json, Normalizer, PreTokenizer, Model, post, Decoder, Added);
    }

    public int? TokenToId(string token) => Added.TokenToId(token) ?? Model.TokenToId(token);

    public string? IdToToken(int id) => Added.IdToToken(id) ?? Model.IdToToken(id);

    /// <summary>Vocabulary size including added tokens (HF get_vocab_size(with_added_tokens=True)).</summary>
    public int VocabSize
    {
        get
        {
            int n = Model.VocabSize;
            foreach (var t in Added.Tokens) if (Model.TokenToId(t.Content) is null) n++;
            return n;
        }
    }

    /// <summary>HF encode_single_sequence: one sequence to tokens with original offsets (no special tokens yet).</summary>
    public RawEncoding EncodeSequence(string text, int typeId)
    {
        // HF tokenizers takes UTF-8 text, so a Python string with a lone surrogate is rejected before tokenizing; do the same.
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            if (char.IsSurrogate(text[i]))
                throw new ArgumentException($"Text contains an unpaired surrogate U+{(int)text[i]:X4} at index {i}; it cannot be encoded as UTF-8", nameof(text));
        }
        var splits = Added.ExtractAndNormalize(text, Normalizer);
        var pieces = new List<Split>(splits.Count * 4);
        var tmp = new List<NormalizedString>();
        foreach (var s in splits)
        {
            if (s.Tokens is not null || PreTokenizer is null) { pieces.Add(s); continue; }
            tmp.Clear();
            PreTokenizer.PreTokenize(s.Normalized, tmp);
            foreach (var p in tmp) if (p.Length > 0) pieces.Add(new Split(p));
        }
        var enc = new RawEncoding();
        var toks = new List<ModelToken>();
        int word = 0;
        foreach (var s in pieces)
        {
            if (s.Normalized.Length == 0 && s.Tokens is null) continue;
            List<ModelToken> list;
            if (s.Tokens is not null) list = s.Tokens;
            else
            {
                toks.Clear();
                Model.Tokenize(s.Normalized.Text, toks);
                list = toks;
            }
            foreach (var t in list)
                enc.Add(t.Id, t.Value, s.Normalized.ToOriginal(t.Start, t.End), word, typeId, null, false);
            word++;
        }
        return enc;
    }

    /// <summary>Adds the special tokens of the post-processor (or HF's default merge when there is none).</summary>
    public RawEncoding PostProcess(RawEncoding a, RawEncoding? b, bool addSpecialTokens)
    {
        var r = PostProcessor is null ? PostProcessors.Default(a, b) : PostProcessor.Process(a, b, addSpecialTokens);
        // HF Encoding::merge_with order: each window of A with B and with every window of B, then A with each window of B.
        foreach (var o in a.Overflowing)
        {
            r.Overflowing.Add(PostProcess(o.Clone(), b?.Clone(), addSpecialTokens));
            if (b is not null) foreach (var bo in b.Overflowing) r.Overflowing.Add(PostProcess(o.Clone(), bo.Clone(), addSpecialTokens));
        }
        if (b is not null) foreach (var bo in b.Overflowing) r.Overflowing.Add(PostProcess(a.Clone(), bo.Clone(), addSpecialTokens));
        return r;
    }

    public int AddedTokens(bool isPair) => PostProcessor?.AddedTokens(isPair) ?? 0;

    /// <summary>HF Tokenizer::decode: ids to token strings (special ones dropped on request), then the decoder chain.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens)
    {
        var tokens = new List<string>();
        foreach (int id in ids)
        {
            string? t = IdToToken(id);
            if (t is null) continue;
            if (skipSpecialTokens && Added.IsSpecialId(id)) continue;
            tokens.Add(t);
        }
        if (Decoder is null) return string.Join(" ", tokens);
        return string.Concat(Decoder.DecodeChain(tokens));
    }
}
