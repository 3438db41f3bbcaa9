using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Core.IO;
using Peft.Transformers.Tokenization.Pipeline;

namespace Peft.Transformers;

/// <summary>
/// A tokenizer loaded from a Hugging Face folder (HF <c>PreTrainedTokenizerFast</c>): the tokenizer.json pipeline
/// plus tokenizer_config.json (special tokens, padding/truncation side, model_max_length). Ids, tokens, offsets and
/// decoded text are those of HF tokenizers. Thread-safe for encoding and decoding; the settable properties are not
/// synchronized.
/// </summary>
public sealed partial class PreTrainedTokenizer
{
    private static readonly JsonSerializerOptions WriteOptions = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private TokenizerPipeline _pipe;
    private readonly JsonObject _config;
    private readonly string[] _modelInputNames;
    private bool? _addBosToken;
    private bool? _addEosToken;

    internal PreTrainedTokenizer(TokenizerPipeline pipe, JsonObject config, string? nameOrPath)
    {
        _pipe = pipe;
        _config = config;
        NameOrPath = nameOrPath;
        TokenizerClass = Json.OptString(config, "tokenizer_class");
        BosToken = SpecialFromConfig("bos_token");
        EosToken = SpecialFromConfig("eos_token");
        UnkToken = SpecialFromConfig("unk_token");
        PadToken = SpecialFromConfig("pad_token");
        SepToken = SpecialFromConfig("sep_token");
        ClsToken = SpecialFromConfig("cls_token");
        MaskToken = SpecialFromConfig("mask_token");
        AdditionalSpecialTokens = (config["additional_special_tokens"] as JsonArray)?
            .Select(n => n is JsonObject o ? Json.OptString(o, "content") : n?.GetValue<string>()).OfType<string>().ToArray() ?? [];
        PaddingSide = Json.OptString(config, "padding_side") == "left" ? PaddingSide.Left : PaddingSide.Right;
        TruncationSide = Json.OptString(config, "truncation_side") == "left" ? TruncationSide.Left : TruncationSide.Right;
        ModelMaxLength = config["model_max_length"] is JsonValue mv && mv.TryGetValue(out double mml) && mml < int.MaxValue ? (int)mml : int.MaxValue;
        CleanUpTokenizationSpaces = Json.Bool(config, "clean_up_tokenization_spaces", false);
        _addBosToken = config["add_bos_token"] is JsonValue ab && ab.TryGetValue(out bool abv) ? abv : null;
        _addEosToken = config["add_eos_token"] is JsonValue ae && ae.TryGetValue(out bool aev) ? aev : null;
        // transformers' Llama-family tokenizers rebuild the template from add_bos_token / add_eos_token at load; we do
        // it when that changes single-sequence encodings (tokenizer.json already holds the default <s> $A template).
        if (IsLlamaFamily(TokenizerClass) && (_addEosToken == true || _addBosToken == false)) UpdatePostProcessor();
        _modelInputNames = (config["model_input_names"] as JsonArray)?.Select(n => n!.GetValue<string>()).ToArray()
            ?? (HasTokenTypeIdsByDefault(TokenizerClass) ? ["input_ids", "token_type_ids", "attention_mask"] : ["input_ids", "attention_mask"]);
    }

    /// <summary>The folder this tokenizer was loaded from.</summary>
    public string? NameOrPath { get; }

    /// <summary>tokenizer_config.json <c>tokenizer_class</c> (e.g. "GPT2Tokenizer").</summary>
    public string? TokenizerClass { get; }

    /// <summary>Beginning-of-sequence token (HF <c>bos_token</c>).</summary>
    public string? BosToken { get; set; }

    /// <summary>End-of-sequence token (HF <c>eos_token</c>).</summary>
    public string? EosToken { get; set; }

    /// <summary>Unknown token (HF <c>unk_token</c>).</summary>
    public string? UnkToken { get; set; }

    /// <summary>Padding token (HF <c>pad_token</c>); set it (e.g. to <see cref="EosToken"/>) before padding a tokenizer that has none.</summary>
    public string? PadToken { get; set; }

    /// <summary>Separator token (HF <c>sep_token</c>).</summary>
    public string? SepToken { get; set; }

    /// <summary>Classifier token (HF <c>cls_token</c>).</summary>
    public string? ClsToken { get; set; }

    /// <summary>Mask token (HF <c>mask_token</c>).</summary>
    public string? MaskToken { get; set; }

    /// <summary>HF <c>additional_special_tokens</c>.</summary>
    public IReadOnlyList<string> AdditionalSpecialTokens { get; }

    /// <summary>Id of <see cref="BosToken"/>, or null.</summary>
    public int? BosTokenId => Id(BosToken);

    /// <summary>Id of <see cref="EosToken"/>, or null.</summary>
    public int? EosTokenId => Id(EosToken);

    /// <summary>Id of <see cref="UnkToken"/>, or null.</summary>
    public int? UnkTokenId => Id(UnkToken);

    /// <summary>Id of <see cref="PadToken"/>, or null.</summary>
    public int? PadTokenId => Id(PadToken);

    /// <summary>Id of <see cref="SepToken"/>, or null.</summary>
    public int? SepTokenId => Id(SepToken);

    /// <summary>Id of <see cref="ClsToken"/>, or null.</summary>
    public int? ClsTokenId => Id(ClsToken);

    /// <summary>Id of <see cref="MaskToken"/>, or null.</summary>
    public int? MaskTokenId => Id(MaskToken);

    /// <summary>The special tokens set in the config (bos, eos, unk, sep, pad, cls, mask, then additional), HF <c>all_special_tokens</c>.</summary>
    public IReadOnlyList<string> AllSpecialTokens =>
        new[] { BosToken, EosToken, UnkToken, SepToken, PadToken, ClsToken, MaskToken }.OfType<string>()
            .Concat(AdditionalSpecialTokens).Distinct().ToArray();

    /// <summary>Ids of <see cref="AllSpecialTokens"/> (HF <c>all_special_ids</c>).</summary>
    public IReadOnlyList<int> AllSpecialIds => AllSpecialTokens.Select(Id).OfType<int>().ToArray();

    /// <summary>Side that receives padding (HF <c>padding_side</c>, from tokenizer_config.json, default right).</summary>
    public PaddingSide PaddingSide { get; set; }

    /// <summary>Side that is cut when truncating (HF <c>truncation_side</c>, default right).</summary>
    public TruncationSide TruncationSide { get; set; }

    /// <summary>Default maximum length for truncation (HF <c>model_max_length</c>; int.MaxValue when the config has none or a huge one).</summary>
    public int ModelMaxLength { get; set; }

    /// <summary>Whether <see cref="Decode"/> applies HF's clean_up_tokenization by default (tokenizer_config.json <c>clean_up_tokenization_spaces</c>).</summary>
    public bool CleanUpTokenizationSpaces { get; set; }

    /// <summary>
    /// Whether <see cref="BosToken"/> starts every sequence (HF <c>add_bos_token</c>); null when the config does not say.
    /// Setting it rebuilds the post-processor template as transformers' Llama-family tokenizers do:
    /// <c>[bos:0] $A:0 [eos:0]</c> and, for pairs, <c>... [bos:1] $B:1 [eos:1]</c>.
    /// </summary>
    public bool? AddBosToken
    {
        get => _addBosToken;
        set { _addBosToken = value; UpdatePostProcessor(); }
    }

    /// <summary>Whether <see cref="EosToken"/> ends every sequence (HF <c>add_eos_token</c>); setting it rebuilds the template (see <see cref="AddBosToken"/>).</summary>
    public bool? AddEosToken
    {
        get => _addEosToken;
        set { _addEosToken = value; UpdatePostProcessor(); }
    }

    private void UpdatePostProcessor()
    {
        bool bos = _addBosToken ?? false, eos = _addEosToken ?? false;
        if (bos && BosTokenId is null) throw new InvalidOperationException($"Tokenizer '{NameOrPath}': add_bos_token is set but bos_token '{BosToken}' has no id");
        if (eos && EosTokenId is null) throw new InvalidOperationException($"Tokenizer '{NameOrPath}': add_eos_token is set but eos_token '{EosToken}' has no id");
        JsonObject Special(string t, int type) => new() { ["SpecialToken"] = new JsonObject { ["id"] = t, ["type_id"] = type } };
        JsonObject Seq(string id, int type) => new() { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = type } };
        var single = new JsonArray();
        var pair = new JsonArray();
        if (bos) single.Add(Special(BosToken!, 0));
        single.Add(Seq("A", 0));
        if (eos) single.Add(Special(EosToken!, 0));
        foreach (var n in single) pair.Add(n!.DeepClone());
        if (bos) pair.Add(Special(BosToken!, 1));
        pair.Add(Seq("B", 1));
        if (eos) pair.Add(Special(EosToken!, 1));
        var specials = new JsonObject();
        if (bos) specials[BosToken!] = new JsonObject { ["id"] = BosToken, ["ids"] = new JsonArray(BosTokenId!.Value), ["tokens"] = new JsonArray(BosToken) };
        if (eos) specials[EosToken!] = new JsonObject { ["id"] = EosToken, ["ids"] = new JsonArray(EosTokenId!.Value), ["tokens"] = new JsonArray(EosToken) };
        var post = new JsonObject { ["type"] = "TemplateProcessing", ["single"] = single, ["pair"] = pair, ["special_tokens"] = specials };
        _pipe = _pipe.WithPostProcessor(post, NameOrPath is null ? "tokenizer.json" : Path.Combine(NameOrPath, "tokenizer.json"));
    }

    private static bool IsLlamaFamily(string? cls) =>
        cls is "LlamaTokenizer" or "LlamaTokenizerFast" or "CodeLlamaTokenizer" or "CodeLlamaTokenizerFast" or "GemmaTokenizer" or "GemmaTokenizerFast";

    /// <summary>HF <c>model_input_names</c>; "token_type_ids" among them makes batches carry token type ids.</summary>
    public IReadOnlyList<string> ModelInputNames => _modelInputNames;

    /// <summary>Size of the model vocabulary without added tokens (HF <c>vocab_size</c>).</summary>
    public int VocabSize => _pipe.Model.VocabSize;

    /// <summary>Vocabulary size including added tokens (HF <c>len(tokenizer)</c>).</summary>
    public int Count => _pipe.VocabSize;

    /// <summary>The tokens added on top of the model vocabulary (HF <c>added_tokens_decoder</c>), by id.</summary>
    public IReadOnlyDictionary<int, string> AddedTokensDecoder => _pipe.Added.Tokens.ToDictionary(t => t.Id, t => t.Content);

    /// <summary>
    /// Encodes one text to ids (HF <c>encode(text, add_special_tokens=...)</c>); no truncation, no padding.
    /// </summary>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true) => EncodeWithOffsets(text, addSpecialTokens).Ids;

    /// <summary>
    /// Encodes one text with offsets, word ids, sequence ids and tokens (HF <c>tokenizer(text, return_offsets_mapping=True)</c>).
    /// With <paramref name="maxLength"/> the text is truncated on <see cref="TruncationSide"/> (special tokens included in
    /// the length); with <paramref name="returnOverflowing"/> the rest comes back as windows overlapping by
    /// <paramref name="stride"/> tokens in <see cref="TokenEncoding.Overflowing"/> (HF <c>return_overflowing_tokens</c>).
    /// </summary>
    public TokenEncoding EncodeWithOffsets(string text, bool addSpecialTokens = true, int? maxLength = null, int stride = 0, bool returnOverflowing = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var a = _pipe.EncodeSequence(text, 0);
        if (maxLength is int max)
        {
            Truncation.Truncate(a, null, max - (addSpecialTokens ? _pipe.AddedTokens(false) : 0), TruncationStrategy.LongestFirst, stride, TruncationSide);
            if (!returnOverflowing) a.Overflowing.Clear();
        }
        return new TokenEncoding(_pipe.PostProcess(a, null, addSpecialTokens));
    }

    /// <summary>
    /// Encodes a pair (HF <c>tokenizer(text, text_pair)</c>): BERT gives <c>[CLS] A [SEP] B [SEP]</c> with token type
    /// ids 0/1. With <paramref name="maxLength"/> set, the pair is truncated by <paramref name="strategy"/> so the
    /// result (special tokens included) fits; with <paramref name="stride"/> &gt; 0 and <paramref name="returnOverflowing"/>,
    /// the cut-off tokens come back as further windows in <see cref="TokenEncoding.Overflowing"/> that overlap by
    /// <paramref name="stride"/> tokens (the question-answering sliding window).
    /// </summary>
    public TokenEncoding EncodePair(string text, string textPair, bool addSpecialTokens = true, int? maxLength = null,
        TruncationStrategy strategy = TruncationStrategy.LongestFirst, int stride = 0, bool returnOverflowing = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(textPair);
        var a = _pipe.EncodeSequence(text, 0);
        var b = _pipe.EncodeSequence(textPair, 1);
        if (maxLength is int max)
        {
            int room = max - (addSpecialTokens ? _pipe.AddedTokens(true) : 0);
            Truncation.Truncate(a, b, room, strategy, stride, TruncationSide);
            if (!returnOverflowing) { a.Overflowing.Clear(); b.Overflowing.Clear(); }
        }
        return new TokenEncoding(_pipe.PostProcess(a, b, addSpecialTokens));
    }

    /// <summary>Token strings of <paramref name="text"/> without special tokens (HF <c>tokenize</c>).</summary>
    public IReadOnlyList<string> Tokenize(string text, bool addSpecialTokens = false) => EncodeWithOffsets(text, addSpecialTokens).Tokens;

    /// <summary>
    /// Encodes a batch (HF <c>tokenizer(texts, padding=..., truncation=..., max_length=...)</c>). <paramref name="padding"/>
    /// pads to the longest row on
    /// <see cref="PaddingSide"/> with <see cref="PadTokenId"/>; <paramref name="truncation"/> cuts rows to
    /// <paramref name="maxLength"/> (default <see cref="ModelMaxLength"/>), special tokens included, on <see cref="TruncationSide"/>.
    /// </summary>
    public BatchEncoding EncodeBatch(IReadOnlyList<string> texts, bool padding = false, bool truncation = false, int? maxLength = null,
        bool addSpecialTokens = true) => EncodeBatchCore(texts, null, padding, truncation, maxLength, addSpecialTokens, false, TruncationStrategy.LongestFirst);

    /// <summary>Batch version of <see cref="EncodePair"/> (HF <c>tokenizer(texts, text_pairs, ...)</c>).</summary>
    public BatchEncoding EncodeBatch(IReadOnlyList<string> texts, IReadOnlyList<string> textPairs, bool padding = false, bool truncation = false,
        int? maxLength = null, bool addSpecialTokens = true, TruncationStrategy strategy = TruncationStrategy.LongestFirst) =>
        EncodeBatchCore(texts, textPairs, padding, truncation, maxLength, addSpecialTokens, false, strategy);

    /// <summary>Like <see cref="EncodeBatch(IReadOnlyList{string}, bool, bool, int?, bool)"/> but pads every row to
    /// <paramref name="maxLength"/> (HF <c>padding="max_length"</c>).</summary>
    public BatchEncoding EncodeBatchPadToMaxLength(IReadOnlyList<string> texts, int maxLength, bool truncation = true, bool addSpecialTokens = true) =>
        EncodeBatchCore(texts, null, true, truncation, maxLength, addSpecialTokens, true, TruncationStrategy.LongestFirst);

    private BatchEncoding EncodeBatchCore(IReadOnlyList<string> texts, IReadOnlyList<string>? pairs, bool padding, bool truncation,
        int? maxLength, bool addSpecialTokens, bool padToMax, TruncationStrategy strategy)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (pairs is not null && pairs.Count != texts.Count)
            throw new ArgumentException($"EncodeBatch: {texts.Count} texts but {pairs.Count} text pairs", nameof(pairs));
        int? limit = truncation ? maxLength ?? ModelMaxLength : null;
        var raws = new RawEncoding[texts.Count];
        void EncodeRow(int i)
        {
            var a = _pipe.EncodeSequence(texts[i] ?? throw new ArgumentNullException(nameof(texts), $"EncodeBatch: texts[{i}] is null"), 0);
            var b = pairs is null ? null : _pipe.EncodeSequence(pairs[i], 1);
            if (limit is int max)
            {
                int room = max - (addSpecialTokens ? _pipe.AddedTokens(b is not null) : 0);
                Truncation.Truncate(a, b, room, strategy, 0, TruncationSide);
                a.Overflowing.Clear();
                b?.Overflowing.Clear();
            }
            raws[i] = _pipe.PostProcess(a, b, addSpecialTokens);
        }
        // Rows are independent (the model caches are thread-safe): encode ranges of rows in parallel when it pays.
        if (texts.Count < 64 || Environment.ProcessorCount == 1)
            for (int i = 0; i < texts.Count; i++) EncodeRow(i);
        else
            Parallel.ForEach(System.Collections.Concurrent.Partitioner.Create(0, texts.Count, Math.Max(32, texts.Count / (Environment.ProcessorCount * 4))),
                range => { for (int i = range.Item1; i < range.Item2; i++) EncodeRow(i); });
        var encs = raws.Select(r => new TokenEncoding(r)).ToArray();
        if (padding)
        {
            int target = padToMax && maxLength is int m ? m : encs.Length == 0 ? 0 : encs.Max(e => e.Count);
            if (encs.Any(e => e.Count < target))
            {
                int padId = PadTokenId ?? throw new InvalidOperationException(
                    $"Tokenizer '{NameOrPath}': asking to pad but it has no pad token; set PadToken (for example PadToken = EosToken)");
                encs = encs.Select(e => Pad(e, target, padId, PadToken!)).ToArray();
            }
        }
        return new BatchEncoding(encs, _modelInputNames.Contains("token_type_ids"));
    }

    private TokenEncoding Pad(TokenEncoding e, int target, int padId, string padToken)
    {
        int n = target - e.Count;
        if (n <= 0) return e;
        bool left = PaddingSide == PaddingSide.Left;
        T[] Cat<T>(IReadOnlyList<T> xs, T v) => left ? Enumerable.Repeat(v, n).Concat(xs).ToArray() : xs.Concat(Enumerable.Repeat(v, n)).ToArray();
        return new TokenEncoding(Cat(e.Ids, padId), Cat(e.Tokens, padToken), Cat(e.TypeIds, 0), Cat(e.Offsets, (0, 0)), Cat(e.WordIds, (int?)null),
            Cat(e.SequenceIds, (int?)null), Cat(e.SpecialTokensMask, 1), Cat(e.AttentionMask, 0), e.Overflowing);
    }

    /// <summary>
    /// Decodes ids to text (HF <c>decode</c>): ids to tokens, special tokens dropped when <paramref name="skipSpecialTokens"/>,
    /// then the tokenizer.json decoder. Unknown ids are skipped. <paramref name="cleanUpTokenizationSpaces"/> (default:
    /// <see cref="CleanUpTokenizationSpaces"/>) removes spaces before punctuation as HF's clean_up_tokenization does.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false, bool? cleanUpTokenizationSpaces = null)
    {
        ArgumentNullException.ThrowIfNull(ids);
        string s = _pipe.Decode(ids, skipSpecialTokens);
        if (cleanUpTokenizationSpaces ?? CleanUpTokenizationSpaces) s = CleanUp(s);
        return s;
    }

    /// <summary>Decodes each row (HF <c>batch_decode</c>).</summary>
    public IReadOnlyList<string> BatchDecode(IEnumerable<IEnumerable<int>> rows, bool skipSpecialTokens = false, bool? cleanUpTokenizationSpaces = null) =>
        rows.Select(r => Decode(r, skipSpecialTokens, cleanUpTokenizationSpaces)).ToArray();

    /// <summary>HF <c>clean_up_tokenization</c>.</summary>
    public static string CleanUp(string s) => s
        .Replace(" .", ".", StringComparison.Ordinal).Replace(" ?", "?", StringComparison.Ordinal)
        .Replace(" !", "!", StringComparison.Ordinal).Replace(" ,", ",", StringComparison.Ordinal)
        .Replace(" ' ", "'", StringComparison.Ordinal).Replace(" n't", "n't", StringComparison.Ordinal)
        .Replace(" 'm", "'m", StringComparison.Ordinal).Replace(" 's", "'s", StringComparison.Ordinal)
        .Replace(" 've", "'ve", StringComparison.Ordinal).Replace(" 're", "'re", StringComparison.Ordinal);

    /// <summary>Id of each token (added tokens first, then the model vocabulary); unknown tokens map to <see cref="UnkTokenId"/> or null.</summary>
    public IReadOnlyList<int?> ConvertTokensToIds(IEnumerable<string> tokens) => tokens.Select(ConvertTokenToId).ToArray();

    /// <summary>Id of one token, <see cref="UnkTokenId"/> when it is unknown, or null when there is no unk token.</summary>
    public int? ConvertTokenToId(string token) => _pipe.TokenToId(token) ?? UnkTokenId;

    /// <summary>Token string of each id (null for an id outside the vocabulary); <paramref name="skipSpecialTokens"/> drops special ones.</summary>
    public IReadOnlyList<string?> ConvertIdsToTokens(IEnumerable<int> ids, bool skipSpecialTokens = false) =>
        ids.Where(i => !skipSpecialTokens || !_pipe.Added.IsSpecialId(i)).Select(_pipe.IdToToken).ToArray();

    /// <summary>The full vocabulary, added tokens included (HF <c>get_vocab()</c>).</summary>
    public IReadOnlyDictionary<string, int> GetVocab()
    {
        var d = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = 0, seen = 0; seen < _pipe.Model.VocabSize && id < _pipe.Model.VocabSize * 4 + 1024; id++)
        {
            var t = _pipe.Model.IdToToken(id);
            if (t is null) continue;
            d[t] = id;
            seen++;
        }
        foreach (var t in _pipe.Added.Tokens) d[t.Content] = t.Id;
        return d;
    }

    /// <summary>
    /// Adds tokens to the vocabulary (HF <c>add_tokens</c> / <c>add_special_tokens</c>): each becomes an added token
    /// that is cut out of the text before the model runs; a token already in the vocabulary keeps its id, a new one gets
    /// the next id after the vocabulary (resize the model's embeddings to <see cref="Count"/>). Special tokens are not
    /// normalized and are dropped by <c>Decode(..., skipSpecialTokens: true)</c>. Returns how many were added.
    /// </summary>
    public int AddTokens(IEnumerable<string> tokens, bool specialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var json = (JsonObject)_pipe.Json.DeepClone();
        var added = json["added_tokens"] as JsonArray ?? [];
        json["added_tokens"] = added;
        int count = 0;
        foreach (var t in tokens)
        {
            if (string.IsNullOrEmpty(t) || _pipe.Added.TokenToId(t) is not null || added.Any(a => Json.OptString(a!, "content") == t)) continue;
            int maxAdded = added.Select(a => a!["id"]!.GetValue<int>()).DefaultIfEmpty(-1).Max();
            int vocab = _pipe.Model.VocabSize;
            int id = _pipe.Model.TokenToId(t) ?? (maxAdded >= vocab ? maxAdded + 1 : vocab);
            added.Add(new JsonObject
            {
                ["id"] = id, ["content"] = t, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = !specialTokens, ["special"] = specialTokens,
            });
            count++;
        }
        if (count > 0) _pipe = TokenizerPipeline.FromJson(json, NameOrPath is null ? "tokenizer.json" : Path.Combine(NameOrPath, "tokenizer.json"));
        return count;
    }

    /// <summary>
    /// Writes tokenizer.json (the pipeline this tokenizer was built from) and tokenizer_config.json (with the current
    /// special tokens, sides and model_max_length), atomically; <see cref="AutoTokenizer.FromPretrained(string)"/> on the folder
    /// gives the same ids.
    /// </summary>
    public void SavePretrained(string dir)
    {
        ArgumentException.ThrowIfNullOrEmpty(dir);
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, "tokenizer.json"), _pipe.Json.ToJsonString(WriteOptions));
        var cfg = (JsonObject)_config.DeepClone();
        void Set(string key, string? v)
        {
            if (v is null) cfg.Remove(key);
            else if (cfg[key] is JsonObject o) o["content"] = v;
            else cfg[key] = v;
        }
        Set("bos_token", BosToken);
        Set("eos_token", EosToken);
        Set("unk_token", UnkToken);
        Set("pad_token", PadToken);
        Set("sep_token", SepToken);
        Set("cls_token", ClsToken);
        Set("mask_token", MaskToken);
        cfg["padding_side"] = PaddingSide == PaddingSide.Left ? "left" : "right";
        cfg["truncation_side"] = TruncationSide == TruncationSide.Left ? "left" : "right";
        if (ModelMaxLength != int.MaxValue || cfg["model_max_length"] is null) cfg["model_max_length"] = ModelMaxLength;
        cfg["clean_up_tokenization_spaces"] = CleanUpTokenizationSpaces;
        if (_addBosToken is bool sb) cfg["add_bos_token"] = sb;
        if (_addEosToken is bool se) cfg["add_eos_token"] = se;
        if (TokenizerClass is null) cfg["tokenizer_class"] = "PreTrainedTokenizerFast";
        if (ChatTemplateJson() is { } chat) cfg["chat_template"] = chat;
        AtomicFile.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), cfg.ToJsonString(WriteOptions));
    }

    private int? Id(string? token) => token is null ? null : _pipe.TokenToId(token);

    private string? SpecialFromConfig(string key) => _config[key] switch
    {
        JsonObject o => Json.OptString(o, "content"),
        JsonValue v when v.TryGetValue(out string? s) => s,
        _ => null,
    };

    private static bool HasTokenTypeIdsByDefault(string? cls)
    {
        // HF: PreTrainedTokenizerFast's default model_input_names include token_type_ids; GPT-2, Llama, Qwen2, OPT
        // (GPT2Tokenizer), RoBERTa, T5 and most decoder tokenizers override it with ["input_ids", "attention_mask"].
        if (cls is null) return false;
        string c = cls.EndsWith("Fast", StringComparison.Ordinal) ? cls[..^4] : cls;
        return c is "BertTokenizer" or "ElectraTokenizer" or "AlbertTokenizer" or "XLNetTokenizer" or "FunnelTokenizer"
            or "LayoutLMTokenizer" or "MobileBertTokenizer" or "SqueezeBertTokenizer" or "PreTrainedTokenizer";
    }
}
