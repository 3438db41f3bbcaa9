using System.Text.RegularExpressions;

namespace Peft.Transformers.Tests.Pipelines;

/// <summary>
/// A small WordPiece tokenizer for pipeline post-processing tests: splits on spaces and punctuation, greedy
/// longest-match with "##" continuations, [CLS] a [SEP] (b [SEP]) with character offsets.
/// </summary>
internal sealed class FakeWordPieceTokenizer : IPipelineTokenizer
{
    private readonly List<string> _vocab;
    private readonly Dictionary<string, int> _ids;

    public FakeWordPieceTokenizer(IEnumerable<string> words)
    {
        _vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", .. words];
        _ids = _vocab.Select((w, i) => (w, i)).ToDictionary(x => x.w, x => x.i);
    }

    public int VocabSize => _vocab.Count;
    public int Id(string token) => _ids[token];
    public int? UnkTokenId => 1;
    public int? MaskTokenId => 4;
    public int? PadTokenId => 0;
    public int? ClsTokenId => 2;
    public bool HasContinuingSubwordPrefix => true;
    public string? IdToToken(int id) => id >= 0 && id < _vocab.Count ? _vocab[id] : null;

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens)
    {
        var toks = ids.Where(i => !skipSpecialTokens || i > 4 || i == 1).Select(i => _vocab[i]);
        return string.Join(" ", toks).Replace(" ##", "", StringComparison.Ordinal).Replace(" .", ".", StringComparison.Ordinal).Replace(" ?", "?", StringComparison.Ordinal);
    }

    private void EncodeText(string text, int seq, List<int> ids, List<(int, int)> offsets, List<bool> special, List<int?> seqIds, List<int> types)
    {
        foreach (Match m in Regex.Matches(text, @"\[MASK\]|\w+|[^\w\s]"))
        {
            if (m.Value == "[MASK]")
            {
                ids.Add(4); offsets.Add((m.Index, m.Index + 6)); special.Add(false); seqIds.Add(seq); types.Add(seq);
                continue;
            }
            int pos = 0;
            var word = m.Value;
            var pieces = new List<(int Id, int Start, int End)>();
            bool unk = false;
            while (pos < word.Length)
            {
                int end = word.Length;
                int found = -1;
                for (; end > pos; end--)
                {
                    var sub = (pos > 0 ? "##" : "") + word[pos..end];
                    if (_ids.TryGetValue(sub, out found)) break;
                }
                if (end == pos) { unk = true; break; }
                pieces.Add((found, m.Index + pos, m.Index + end));
                pos = end;
            }
            if (unk) pieces = [(1, m.Index, m.Index + word.Length)];
            foreach (var p in pieces)
            {
                ids.Add(p.Id); offsets.Add((p.Start, p.End)); special.Add(false); seqIds.Add(seq); types.Add(seq);
            }
        }
    }

    public PipelineEncoding Encode(string text, string? pair = null, bool addSpecialTokens = true, int? maxLength = null, int stride = 0)
    {
        var ids = new List<int>(); var offsets = new List<(int, int)>(); var special = new List<bool>(); var seqIds = new List<int?>(); var types = new List<int>();
        void Special(int id, int type) { ids.Add(id); offsets.Add((0, 0)); special.Add(true); seqIds.Add(null); types.Add(type); }
        if (addSpecialTokens) Special(2, 0);
        EncodeText(text, 0, ids, offsets, special, seqIds, types);
        if (addSpecialTokens) Special(3, 0);
        if (pair is not null)
        {
            EncodeText(pair, 1, ids, offsets, special, seqIds, types);
            if (addSpecialTokens) Special(3, 1);
        }
        return new PipelineEncoding(ids, offsets, special, seqIds, types);
    }
}
