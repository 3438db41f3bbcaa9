using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Peft.Transformers.Tokenization.Pipeline;

/// <summary>An entry of tokenizer.json <c>added_tokens</c>.</summary>
internal sealed record AddedToken(int Id, string Content, bool SingleWord, bool LStrip, bool RStrip, bool Normalized, bool Special);

/// <summary>
/// Ours: HF's AddedVocabulary. Added tokens are cut out of the text before the model runs: first those with
/// normalized=false on the raw text, then (after normalizing each remaining piece) those with normalized=true on
/// the normalized text; leftmost-longest matching, single_word boundaries and lstrip/rstrip whitespace as in HF.
/// </summary>
internal sealed class AddedVocabulary
{
    private static readonly Regex WordStart = new(@"^\w", RegexOptions.Compiled);
    private static readonly Regex WordEnd = new(@"\w$", RegexOptions.Compiled);

    private readonly Dictionary<string, AddedToken> _byContent = new(StringComparator);
    private readonly Dictionary<int, AddedToken> _byId = [];
    private readonly Matcher _raw;
    private readonly Matcher _normalized;

    private static StringComparer StringComparator => StringComparer.Ordinal;

    public AddedVocabulary(IReadOnlyList<AddedToken> tokens, INormalizer? normalizer)
    {
        Tokens = tokens;
        foreach (var t in tokens)
        {
            _byContent[t.Content] = t;
            _byId[t.Id] = t;
        }
        _raw = new Matcher(tokens.Where(t => !t.Normalized && t.Content.Length > 0).Select(t => (t.Content, t)));
        _normalized = new Matcher(tokens.Where(t => t.Normalized && t.Content.Length > 0).Select(t =>
            (normalizer is null ? t.Content : normalizer.Normalize(NormalizedString.FromOriginal(t.Content)).Text, t)));
    }

    public IReadOnlyList<AddedToken> Tokens { get; }

    public static List<AddedToken> FromJson(JsonNode? node, string where)
    {
        var list = new List<AddedToken>();
        if (node is null) return list;
        if (node is not JsonArray a) throw new InvalidDataException($"{where}: expected an array");
        int i = 0;
        foreach (var t in a)
        {
            string w = $"{where}[{i++}]";
            if (t is null) throw new InvalidDataException($"{w}: null entry");
            int id = t["id"] is JsonValue iv && iv.TryGetValue(out int x) ? x : throw new InvalidDataException($"{w}: missing 'id'");
            list.Add(new AddedToken(id, Json.String(t, "content", w), Json.Bool(t, "single_word", false), Json.Bool(t, "lstrip", false),
                Json.Bool(t, "rstrip", false), Json.Bool(t, "normalized", true), Json.Bool(t, "special", false)));
        }
        return list;
    }

    public int? TokenToId(string content) => _byContent.TryGetValue(content, out var t) ? t.Id : null;

    public string? IdToToken(int id) => _byId.TryGetValue(id, out var t) ? t.Content : null;

    public bool IsSpecialId(int id) => _byId.TryGetValue(id, out var t) && t.Special;

    public bool IsSpecialToken(string content) => _byContent.TryGetValue(content, out var t) && t.Special;

    /// <summary>HF extract_and_normalize: the splits of <paramref name="text"/>, added tokens already assigned.</summary>
    public List<Split> ExtractAndNormalize(string text, INormalizer? normalizer)
    {
        var first = new List<Split>();
        SplitWith(NormalizedString.FromOriginal(text), _raw, first);
        var result = new List<Split>(first.Count);
        foreach (var s in first)
        {
            if (s.Tokens is not null) { result.Add(s); continue; }
            var n = normalizer is null ? s.Normalized : normalizer.Normalize(s.Normalized);
            SplitWith(n, _normalized, result);
        }
        return result;
    }

    private void SplitWith(NormalizedString s, Matcher matcher, List<Split> output)
    {
        string t = s.Text;
        int startOffset = 0;
        if (!matcher.IsEmpty)
        {
            foreach (var (ms, me, tok) in matcher.Find(t))
            {
                int start = ms, stop = me;
                if (tok.SingleWord)
                {
                    bool startSpace = start == 0 || !WordEnd.IsMatch(t[..start]);
                    bool stopSpace = stop == t.Length || !WordStart.IsMatch(t[stop..]);
                    if (!startSpace || !stopSpace) continue;
                }
                if (tok.LStrip)
                {
                    int ns = start;
                    while (ns > 0 && char.IsWhiteSpace(t[ns - 1])) ns--;
                    start = Math.Max(ns, startOffset);
                }
                if (tok.RStrip)
                {
                    while (stop < t.Length && char.IsWhiteSpace(t[stop])) stop++;
                }
                if (startOffset < start) output.Add(new Split(s.Slice(startOffset, start)));
                var piece = s.Slice(start, stop);
                output.Add(new Split(piece, [new ModelToken(tok.Id, piece.Text, 0, piece.Length)]));
                startOffset = stop;
            }
        }
        if (startOffset < t.Length) output.Add(new Split(startOffset == 0 ? s : s.Slice(startOffset, t.Length)));
    }

    /// <summary>Leftmost-longest multi-pattern matching (what HF gets from aho-corasick with LeftmostLongest).</summary>
    private sealed class Matcher
    {
        private readonly Dictionary<char, List<(string Pattern, AddedToken Token)>> _byFirst = [];

        public Matcher(IEnumerable<(string Pattern, AddedToken Token)> patterns)
        {
            foreach (var (p, t) in patterns)
            {
                if (p.Length == 0) continue;
                if (!_byFirst.TryGetValue(p[0], out var l)) _byFirst[p[0]] = l = [];
                if (!l.Any(x => x.Pattern == p)) l.Add((p, t));
            }
            foreach (var l in _byFirst.Values) l.Sort((x, y) => y.Pattern.Length.CompareTo(x.Pattern.Length));
        }

        public bool IsEmpty => _byFirst.Count == 0;

        public IEnumerable<(int Start, int End, AddedToken Token)> Find(string text)
        {
            int i = 0;
            while (i < text.Length)
            {
                if (_byFirst.TryGetValue(text[i], out var cands))
                {
                    bool found = false;
                    foreach (var (p, tok) in cands)
                    {
                        if (string.CompareOrdinal(text, i, p, 0, p.Length) == 0 && i + p.Length <= text.Length)
                        {
                            yield return (i, i + p.Length, tok);
                            i += p.Length;
                            found = true;
                            break;
                        }
                    }
                    if (found) continue;
                }
                i++;
            }
        }
    }
}
