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
                            if (m is JsonArray pair && pair.Count == 2 && pair[0] is JsonValue p0 && p0.TryGetValue(out string? a) && pair[1] is JsonValue p1 && p1.TryGetValue(out string? b))
                                merges.Add((a, b));
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
            case "Unigram":
                {
                    if (o["vocab"] is not JsonArray uv) throw new InvalidDataException($"{where}: Unigram model has no 'vocab' array");
                    var pieces = new List<(string, double)>(uv.Count);
                    int i = 0;
                    foreach (var e in uv)
                    {
                        if (e is not JsonArray pair || pair.Count != 2 || pair[0] is not JsonValue pv || !pv.TryGetValue(out string? piece)
                            || pair[1] is not JsonValue sv || !sv.TryGetValue(out double score))
                            throw new InvalidDataException($"{where}.vocab[{i}]: expected [piece, score], got {e?.ToJsonString() ?? "null"}");
                        pieces.Add((piece, score));
                        i++;
                    }
                    int? unkId = o["unk_id"] is JsonValue u && u.TryGetValue(out int ui) ? ui : null;
                    if (unkId is int uk && (uk < 0 || uk >= pieces.Count)) throw new InvalidDataException($"{where}: unk_id {uk} is outside the vocabulary");
                    return new UnigramModel(pieces, unkId, Json.Bool(o, "byte_fallback", false));
                }
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
/// Llama-3 need them), and offsets must follow HF's byte-granular rules; its TiktokenTokenizer wants a tiktoken rank
/// file with its own regex and special-token handling rather than tokenizer.json's vocab + merges (Llama-3 ships the
/// latter, and BPE with ignore_merges reproduces it exactly). So the model is re-implemented here
/// following HF tokenizers' <c>models/bpe</c>: per-char symbols (with continuing_subword_prefix /
/// end_of_word_suffix), byte fallback to <c>&lt;0xNN&gt;</c>, unk fusing, then repeated merging of the adjacent pair
/// with the lowest merge rank (leftmost first), and a word cache.
/// </summary>
internal sealed class BpeModel : ITokenizerModel
{
    private const int CacheCapacity = 100_000; // a speed setting only (HF uses 10,000); results do not depend on it
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
    private int _cacheCount; // ConcurrentDictionary.Count takes every lock, so the size is counted here

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

    private static long Pri(int rank, int pos) => ((long)rank << 32) | (uint)pos;

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
        if (word.Length < MaxCachedLength && Volatile.Read(ref _cacheCount) < CacheCapacity && _cache.TryAdd(word, res))
            Interlocked.Increment(ref _cacheCount);
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
        // Priority = (rank, position) packed in a long: lowest rank first, then leftmost (HF's Merge ordering).
        var queue = new PriorityQueue<(int Pos, int NewId), long>();
        for (int k = 0; k + 1 < n; k++)
            if (_merges.TryGetValue(Key(c[k], c[k + 1]), out var m)) queue.Enqueue((k, m.NewId), Pri(m.Rank, k));
        while (queue.TryDequeue(out var top, out _))
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
                queue.Enqueue((prev[pos], pm.NewId), Pri(pm.Rank, prev[pos]));
            if (next[pos] != -1 && _merges.TryGetValue(Key(c[pos], c[next[pos]]), out var nm))
                queue.Enqueue((pos, nm.NewId), Pri(nm.Rank, pos));
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

/// <summary>
/// Unigram (SentencePiece) model, ours: ML.Tokenizers' SentencePieceTokenizer loads a .model protobuf and applies its
/// own normalization, not tokenizer.json's vocab/scores. Follows HF tokenizers' <c>models/unigram</c>: Viterbi over
/// all vocabulary pieces starting at each character (the first best path found wins ties, shorter pieces are
/// tried first), an unknown character costs min score - 10, consecutive unknowns are fused, and with byte_fallback
/// an unknown piece becomes its &lt;0xNN&gt; byte tokens.
/// </summary>
internal sealed class UnigramModel : ITokenizerModel
{
    private const double UnkPenalty = 10.0;
    private readonly Dictionary<string, int> _vocab = new(StringComparer.Ordinal);
    private readonly List<(string Piece, double Score)> _pieces;
    private readonly int? _unkId;
    private readonly bool _byteFallback;
    private readonly double _unkScore;
    private readonly int _maxPieceLength;

    public UnigramModel(List<(string Piece, double Score)> pieces, int? unkId, bool byteFallback)
    {
        _pieces = pieces;
        _unkId = unkId;
        _byteFallback = byteFallback;
        double min = double.MaxValue;
        for (int i = 0; i < pieces.Count; i++)
        {
            _vocab.TryAdd(pieces[i].Piece, i);
            min = Math.Min(min, pieces[i].Score);
            _maxPieceLength = Math.Max(_maxPieceLength, pieces[i].Piece.Length);
        }
        _unkScore = (pieces.Count == 0 ? 0 : min) - UnkPenalty;
    }

    public string? UnkToken => _unkId is int u ? _pieces[u].Piece : null;

    public int VocabSize => _pieces.Count;

    public int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    public string? IdToToken(int id) => id >= 0 && id < _pieces.Count ? _pieces[id].Piece : null;

    public void Tokenize(string text, List<ModelToken> output)
    {
        if (text.Length == 0) return;
        int n = text.Length;
        var bestScore = new double[n + 1];
        var startsAt = new int[n + 1];
        var bestId = new int[n + 1];
        Array.Fill(startsAt, -1);
        for (int start = 0; start < n;)
        {
            int cpLen = char.IsHighSurrogate(text[start]) && start + 1 < n && char.IsLowSurrogate(text[start + 1]) ? 2 : 1;
            if (start > 0 && startsAt[start] == -1) { start += cpLen; continue; } // unreachable position
            double till = bestScore[start];
            bool hasSingle = false;
            for (int len = 1; len <= _maxPieceLength && start + len <= n; len++)
            {
                if (char.IsHighSurrogate(text[start + len - 1]) && start + len < n && char.IsLowSurrogate(text[start + len])) continue;
                if (!_vocab.TryGetValue(text.Substring(start, len), out int id)) continue;
                double cand = _pieces[id].Score + till;
                int end = start + len;
                if (startsAt[end] == -1 || cand > bestScore[end]) { bestScore[end] = cand; startsAt[end] = start; bestId[end] = id; }
                if (len == cpLen) hasSingle = true;
            }
            if (!hasSingle)
            {
                int end = start + cpLen;
                double cand = _unkScore + till;
                if (startsAt[end] == -1 || cand > bestScore[end]) { bestScore[end] = cand; startsAt[end] = start; bestId[end] = _unkId ?? -1; }
            }
            start += cpLen;
        }
        // Backtrack, fusing consecutive unknown pieces (HF fuses them into one string).
        var pieces = new List<(int S, int E)>();
        int endPos = n, fusedEnd = -1;
        while (endPos > 0)
        {
            int s = startsAt[endPos];
            bool unk = _unkId is int u ? bestId[endPos] == u : bestId[endPos] == -1;
            if (unk) { if (fusedEnd < 0) fusedEnd = endPos; }
            else
            {
                if (fusedEnd >= 0) { pieces.Add((endPos, fusedEnd)); fusedEnd = -1; }
                pieces.Add((s, endPos));
            }
            endPos = s;
        }
        if (fusedEnd >= 0) pieces.Add((0, fusedEnd));
        pieces.Reverse();
        foreach (var (s, e) in pieces)
        {
            string str = text[s..e];
            if (_vocab.TryGetValue(str, out int id)) { output.Add(new ModelToken(id, str, s, e)); continue; }
            if (_byteFallback)
            {
                var bytes = Encoding.UTF8.GetBytes(str);
                var ids = new int[bytes.Length];
                bool all = true;
                for (int k = 0; k < bytes.Length && all; k++) all = _vocab.TryGetValue($"<0x{bytes[k]:X2}>", out ids[k]);
                if (all)
                {
                    for (int k = 0; k < bytes.Length; k++) output.Add(new ModelToken(ids[k], $"<0x{bytes[k]:X2}>", s, e));
                    continue;
                }
            }
            if (_unkId is not int unkId) throw new InvalidOperationException($"Unigram model: '{str}' is not in the vocabulary and there is no unk_id");
            output.Add(new ModelToken(unkId, str, s, e));
        }
    }
}
