namespace Peft.Transformers.Tokenization.Pipeline;

/// <summary>Mutable per-sequence encoding used inside the pipeline (HF tokenizers' Encoding).</summary>
internal sealed class RawEncoding
{
    public List<int> Ids { get; } = [];
    public List<int> TypeIds { get; } = [];
    public List<string> Tokens { get; } = [];
    public List<(int Start, int End)> Offsets { get; } = [];
    public List<int?> WordIds { get; } = [];
    public List<int?> SequenceIds { get; } = [];
    public List<int> SpecialTokensMask { get; } = [];
    public List<RawEncoding> Overflowing { get; } = [];

    public int Count => Ids.Count;

    public void Add(int id, string token, (int, int) offsets, int? word, int typeId, int? seq, bool special)
    {
        Ids.Add(id);
        Tokens.Add(token);
        Offsets.Add(offsets);
        WordIds.Add(word);
        TypeIds.Add(typeId);
        SequenceIds.Add(seq);
        SpecialTokensMask.Add(special ? 1 : 0);
    }

    public void AppendRange(RawEncoding other, int start, int end, int? typeId = null, int? seq = null, bool overrideSeq = false)
    {
        for (int i = start; i < end; i++)
            Add(other.Ids[i], other.Tokens[i], other.Offsets[i], other.WordIds[i], typeId ?? other.TypeIds[i],
                overrideSeq ? seq : other.SequenceIds[i], other.SpecialTokensMask[i] == 1);
    }

    public RawEncoding Slice(int start, int end)
    {
        var e = new RawEncoding();
        e.AppendRange(this, start, end);
        return e;
    }

    public RawEncoding Clone() => Slice(0, Count);
}
