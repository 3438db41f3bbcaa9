using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using ML = Microsoft.ML.Tokenizers;

namespace Peft.Transformers.Tokenization.Pipeline;

internal interface ITokenizerModel
{
    /// <summary>Tokenizes one pre-token; offsets are UTF-16 ranges inside <paramref name="word"/>.</summary>
    void Tokenize(string word, List<ModelToken> output);

    int? TokenToId(string token);

    string? IdToToken(int id);

    int VocabSize { get; }

    /// <summary>Unknown token, if the model has one.</summary>
    string? UnkToken { get; }
}

internal static class Models
{
    public static ITokenizerModel FromJson(JsonNode? node, string where)
    {
        if (node is not JsonObject o) throw new InvalidDataException($"{where}: missing 'model'");
        // Older files omit "type" on the model; HF then infers it from the fields.
        string type = o["type"] is JsonValue tv && tv.TryGetValue(out string? t) ? t
            : o["merges"] is not null ? "BPE" : o["continuing_subword_prefix"] is not null ? "WordPiece" : "WordLevel";
        var vocabNode = o["vocab"] as JsonObject;
        switch (type)
        {
            case "BPE":
                {
                    if (vocabNode is null) throw new InvalidDataException($"{where}: BPE model has no 'vocab' object");
                    if (o["dropout"] is JsonValue dv && dv.TryGetValue(out double d) && d > 0)
                        throw new NotSupportedException($"{where}: BPE dropout {d} is not supported (encoding would not be deterministic)");
                    var vocab = ReadVocab(vocabNode, where);
                    var merges = new List<(string, string)>();
                    if (o["merges"] is JsonArray ma)
                    {
                        int i = 0;
                        foreach (var m in ma)
                        {
                            if (m is JsonArray pair && pair.Count == 2) merges.Add((pair[0]!.GetValue<string>(), pair[1]!.GetValue<string>()));
                            else if (m is JsonValue mv && mv.TryGetValue(out string? ms))
                            {
                                var parts = ms.Split(' ');
                                if (parts.Length != 2) throw new InvalidDataException($"{where}.merges[{i}]: '{ms}' is not 'a b'");
                                merges.Add((parts[0], parts[1]));
                            }
                            else throw new InvalidDataException($"{where}.merges[{i}]: unexpected {m?.ToJsonString()}");
                            i++;
                        }
                    }
                    return new BpeModel(vocab, merges, Json.OptString(o, "unk_token"), Json.OptString(o, "continuing_subword_prefix"),
                        Json.OptString(o, "end_of_word_suffix"), Json.Bool(o, "fuse_unk", false), Json.Bool(o, "byte_fallback", false),
                        Json.Bool(o, "ignore_merges", false), where);
                }
            case "WordPiece":
                if (vocabNode is null) throw new InvalidDataException($"{where}: WordPiece model has no 'vocab' object");
                return new WordPieceModel(ReadVocab(vocabNode, where), Json.OptString(o, "unk_token") ?? "[UNK]",
                    Json.OptString(o, "continuing_subword_prefix") ?? "##", Json.Int(o, "max_input_chars_per_word", 100), where);
            case "WordLevel":
                if (vocabNode is null) throw new InvalidDataException($"{where}: WordLevel model has no 'vocab' object");
                return new WordLevelModel(ReadVocab(vocabNode, where), Json.OptString(o, "unk_token"));
            default:
                throw new NotSupportedException($"{where}: model type '{type}' is not supported");
        }
    }

    public static Dictionary<string, int> ReadVocab(JsonObject vocab, string where)
    {
        var d = new Dictionary<string, int>(vocab.Count, StringComparer.Ordinal);
        foreach (var (k, v) in vocab)
        {
            if (v is not JsonValue jv || !jv.TryGetValue(out int id))
                throw new InvalidDataException($"{where}.vocab['{k}']: expected an integer id, got {v?.ToJsonString() ?? "null"}");
            d[k] = id;
        }
        return d;
    }
}

/// <summary>
/// Byte-pair encoding, ours. ML.Tokenizers' BpeTokenizer has no byte_fallback and no ignore_merges (Llama-2 and
/// Llama-3 need them), and offsets must follow HF's byte-granular rules, so the model is re-implemented here
/// following HF tokenizers' <c>models/bpe</c>: per-char symbols (with continuing_subword_prefix /
/// end_of_word_suffix), byte fallback to <c>&lt;0xNN&gt;</c>, unk fusing, then repeated merging of the adjacent pair
/// with the lowest merge rank (leftmost first), and a word cache.
/// </summary>
internal sealed class BpeModel : ITokenizerModel
{
    private const int CacheCapacity = 10_000;
    private const int MaxCachedLength = 256;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<int, string> _vocabR;
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly int? _unkId;
    private readonly string? _prefix;
    private readonly string? _suffix;
    private readonly bool _fuseUnk;
    private readonly bool _byteFallback;
    private readonly bool _ignoreMerges;
    private readonly int[]? _byteIds;
    private readonly ConcurrentDictionary<string, ModelToken[]> _cache = new(StringComparer.Ordinal);

    public BpeModel(Dictionary<string, int> vocab, List<(string A, string B)> merges, string? unk, string? prefix, string? suffix,
        bool fuseUnk, bool byteFallback, bool ignoreMerges, string where)
    {
        _vocab = vocab;
        _vocabR = new Dictionary<int, string>(vocab.Count);
        foreach (var (k, v) in vocab) _vocabR[v] = k;
        UnkToken = unk;
        _prefix = prefix;
        _suffix = suffix;
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
        if (unk is not null && vocab.TryGetValue(unk, out int u)) _unkId = u;
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        int prefixLen = prefix?.Length ?? 0;
        for (int r = 0; r < merges.Count; r++)
        {
            var (a, b) = merges[r];
            if (!vocab.TryGetValue(a, out int ia)) throw new InvalidDataException($"{where}.merges[{r}]: token '{a}' is not in the vocabulary");
            if (!vocab.TryGetValue(b, out int ib)) throw new InvalidDataException($"{where}.merges[{r}]: token '{b}' is not in the vocabulary");
            string merged = a + (prefixLen > 0 && b.StartsWith(prefix!, StringComparison.Ordinal) ? b[prefixLen..] : b);
            if (!vocab.TryGetValue(merged, out int nid)) throw new InvalidDataException($"{where}.merges[{r}]: merged token '{merged}' is not in the vocabulary");
            _merges[Key(ia, ib)] = (r, nid); // HF builds a HashMap: a repeated pair keeps the last rank
        }
        if (byteFallback)
        {
            _byteIds = new int[256];
            for (int b = 0; b < 256; b++) _byteIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
        }
    }

    public string? UnkToken { get; }

    public int VocabSize => _vocab.Count;

    public int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    public string? IdToToken(int id) => _vocabR.TryGetValue(id, out var t) ? t : null;

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    public void Tokenize(string word, List<ModelToken> output)
    {
        if (word.Length == 0) return;
        if (_ignoreMerges && _vocab.TryGetValue(word, out int whole))
        {
            output.Add(new ModelToken(whole, word, 0, word.Length));
            return;
        }
        if (_cache.TryGetValue(word, out var hit))
        {
            output.AddRange(hit);
            return;
        }
        var res = MergeWord(word);
        if (word.Length < MaxCachedLength && _cache.Count < CacheCapacity) _cache.TryAdd(word, res);
        output.AddRange(res);
    }

    private ModelToken[] MergeWord(string w)
    {
        // Symbols carry HF's byte lengths; offsets are turned into UTF-16 ranges at the end.
        var ids = new List<int>(w.Length);
        var lens = new List<int>(w.Length);
        int? unkPendingId = null;
        int unkPendingLen = 0;
        Span<byte> buf = stackalloc byte[4];
        for (int i = 0; i < w.Length;)
        {
            int cpLen = char.IsHighSurrogate(w[i]) && i + 1 < w.Length && char.IsLowSurrogate(w[i + 1]) ? 2 : 1;
            var piece = w.AsSpan(i, cpLen);
            int byteLen = Encoding.UTF8.GetBytes(piece, buf);
            bool isFirst = i == 0, isLast = i + cpLen == w.Length;
            string s = (!isFirst && _prefix is not null ? _prefix : "") + piece.ToString() + (isLast && _suffix is not null ? _suffix : "");
            i += cpLen;
            if (_vocab.TryGetValue(s, out int id))
            {
                if (unkPendingId is int pu) { ids.Add(pu); lens.Add(unkPendingLen); unkPendingId = null; }
                ids.Add(id);
                lens.Add(byteLen);
                continue;
            }
            if (_byteFallback)
            {
                bool all = true;
                for (int k = 0; k < byteLen; k++) if (_byteIds![buf[k]] < 0) { all = false; break; }
                if (all)
                {
                    for (int k = 0; k < byteLen; k++) { ids.Add(_byteIds![buf[k]]); lens.Add(1); }
                    continue;
                }
            }
            if (UnkToken is not null)
            {
                if (_unkId is null) throw new InvalidOperationException($"BPE model: unk_token '{UnkToken}' is not in the vocabulary");
                if (unkPendingId is int p)
                {
                    if (_fuseUnk) { unkPendingLen += byteLen; continue; }
                    ids.Add(p);
                    lens.Add(unkPendingLen);
                }
                unkPendingId = _unkId;
                unkPendingLen = byteLen;
            }
        }
        if (unkPendingId is int last) { ids.Add(last); lens.Add(unkPendingLen); }

        int n = ids.Count;
        var c = ids.ToArray();
        var len = lens.ToArray();
        var prev = new int[n];
        var next = new int[n];
        for (int k = 0; k < n; k++) { prev[k] = k - 1; next[k] = k + 1 < n ? k + 1 : -1; }
        var queue = new PriorityQueue<(int Pos, int NewId), (int Rank, int Pos)>();
        for (int k = 0; k + 1 < n; k++)
            if (_merges.TryGetValue(Key(c[k], c[k + 1]), out var m)) queue.Enqueue((k, m.NewId), (m.Rank, k));
        while (queue.TryDequeue(out var top, out var pri))
        {
            int pos = top.Pos;
            if (len[pos] == 0 || next[pos] == -1) continue;
            int nx = next[pos];
            if (!_merges.TryGetValue(Key(c[pos], c[nx]), out var cur) || cur.NewId != top.NewId) continue;
            c[pos] = top.NewId;
            len[pos] += len[nx];
            len[nx] = 0;
            next[pos] = next[nx];
            if (next[nx] != -1) prev[next[nx]] = pos;
            if (prev[pos] != -1 && _merges.TryGetValue(Key(c[prev[pos]], c[pos]), out var pm))
                queue.Enqueue((prev[pos], pm.NewId), (pm.Rank, prev[pos]));
            if (next[pos] != -1 && _merges.TryGetValue(Key(c[pos], c[next[pos]]), out var nm))
                queue.Enqueue((pos, nm.NewId), (nm.Rank, pos));
            _ = pri;
        }

        // Byte offset -> UTF-16 range of the char holding that byte (HF converts through per-byte alignments).
        var byteCharStart = new List<int>(w.Length * 2);
        var byteCharEnd = new List<int>(w.Length * 2);
        for (int i = 0; i < w.Length;)
        {
            int cpLen = char.IsHighSurrogate(w[i]) && i + 1 < w.Length && char.IsLowSurrogate(w[i + 1]) ? 2 : 1;
            int bl = Encoding.UTF8.GetByteCount(w.AsSpan(i, cpLen));
            for (int k = 0; k < bl; k++) { byteCharStart.Add(i); byteCharEnd.Add(i + cpLen); }
            i += cpLen;
        }
        var result = new List<ModelToken>(n);
        int offset = 0;
        for (int k = 0; k < n; k++)
        {
            if (len[k] == 0) continue;
            int a = offset, b = offset + len[k];
            offset = b;
            int s16 = a < byteCharStart.Count ? byteCharStart[a] : w.Length;
            int e16 = b - 1 < byteCharEnd.Count ? byteCharEnd[b - 1] : w.Length;
            result.Add(new ModelToken(c[k], _vocabR.TryGetValue(c[k], out var v) ? v : "", s16, e16));
        }
        return result.ToArray();
    }
}

/// <summary>
/// WordPiece: the greedy longest-match-first search is ML.Tokenizers' <see cref="ML.WordPieceTokenizer"/> (the same
/// algorithm as HF; we call it on one pre-token with its own pre-tokenization and normalization turned off). Ours:
/// the max_input_chars_per_word check, which HF counts in code points (ML.Tokenizers counts UTF-16 units).
/// </summary>
internal sealed class WordPieceModel : ITokenizerModel
{
    private readonly ML.WordPieceTokenizer _ml;
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<int, string> _vocabR;
    private readonly int _unkId;
    private readonly int _maxChars;

    public WordPieceModel(Dictionary<string, int> vocab, string unk, string prefix, int maxChars, string where)
    {
        _vocab = vocab;
        _vocabR = vocab.ToDictionary(kv => kv.Value, kv => kv.Key);
        if (!vocab.TryGetValue(unk, out _unkId)) throw new InvalidDataException($"{where}: WordPiece unk_token '{unk}' is not in the vocabulary");
        UnkToken = unk;
        _maxChars = maxChars;
        // ML.Tokenizers reads a vocab.txt stream (id = line number): the ids must be 0..N-1 without gaps and no
        // token may contain a line break or be empty.
        var lines = new string[vocab.Count];
        foreach (var (tok, id) in vocab)
        {
            if (id < 0 || id >= lines.Length || lines[id] is not null)
                throw new NotSupportedException($"{where}: WordPiece vocab ids must be 0..{lines.Length - 1} without gaps or duplicates (id {id} for '{tok}')");
            if (tok.Length == 0 || tok.Contains('\n') || tok.Contains('\r'))
                throw new NotSupportedException($"{where}: WordPiece vocab token '{tok}' (id {id}) is empty or contains a line break");
            lines[id] = tok;
        }
        using var ms = new MemoryStream(Encoding.UTF8.GetBytes(string.Join("\n", lines) + "\n"));
        _ml = ML.WordPieceTokenizer.Create(ms, new ML.WordPieceOptions
        {
            UnknownToken = unk,
            ContinuingSubwordPrefix = prefix,
            MaxInputCharsPerWord = Math.Max(1, maxChars) * 2,
            PreTokenizer = null,
            Normalizer = null,
        });
    }

    public string? UnkToken { get; }

    public int VocabSize => _vocab.Count;

    public int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    public string? IdToToken(int id) => _vocabR.TryGetValue(id, out var t) ? t : null;

    public void Tokenize(string word, List<ModelToken> output)
    {
        if (word.Length == 0) return;
        int cps = 0;
        for (int i = 0; i < word.Length; i++) if (!char.IsLowSurrogate(word[i])) cps++;
        if (cps > _maxChars)
        {
            output.Add(new ModelToken(_unkId, UnkToken!, 0, word.Length));
            return;
        }
        var toks = _ml.EncodeToTokens(word, out _, considerPreTokenization: false, considerNormalization: false);
        foreach (var t in toks)
        {
            var (s, l) = t.Offset.GetOffsetAndLength(word.Length);
            output.Add(new ModelToken(t.Id, t.Value, s, s + l));
        }
    }
}

/// <summary>WordLevel (whole pre-token lookup), ours: trivial.</summary>
internal sealed class WordLevelModel(Dictionary<string, int> vocab, string? unk) : ITokenizerModel
{
    private readonly Dictionary<int, string> _vocabR = vocab.ToDictionary(kv => kv.Value, kv => kv.Key);

    public string? UnkToken => unk;

    public int VocabSize => vocab.Count;

    public int? TokenToId(string token) => vocab.TryGetValue(token, out int id) ? id : null;

    public string? IdToToken(int id) => _vocabR.TryGetValue(id, out var t) ? t : null;

    public void Tokenize(string word, List<ModelToken> output)
    {
        if (vocab.TryGetValue(word, out int id)) output.Add(new ModelToken(id, word, 0, word.Length));
        else if (unk is not null && vocab.TryGetValue(unk, out int u)) output.Add(new ModelToken(u, unk, 0, word.Length));
        else throw new InvalidOperationException($"WordLevel model: '{word}' is not in the vocabulary and there is no unk_token");
    }
}
