using System.Text.Json.Nodes;

namespace Peft.Transformers.Tokenization.Pipeline;

// Ours: ML.Tokenizers has no post-processor concept (special tokens are added by per-model flags), so the
// tokenizer.json post-processors (templates, type ids, offset trimming) are implemented here.

internal interface IPostProcessor
{
    /// <summary>Number of special tokens added for a single sequence or a pair.</summary>
    int AddedTokens(bool isPair);

    RawEncoding Process(RawEncoding a, RawEncoding? b, bool addSpecialTokens);
}

internal static class PostProcessors
{
    public static IPostProcessor? FromJson(JsonNode? node, string where)
    {
        if (node is null) return null;
        string type = Json.Type(node, where);
        switch (type)
        {
            case "TemplateProcessing": return TemplateProcessor.FromJson(node, where);
            case "ByteLevel": return new ByteLevelProcessor(Json.Bool(node, "trim_offsets", true), Json.Bool(node, "add_prefix_space", true));
            case "BertProcessing":
                {
                    var (sep, sepId) = TokenPair(node["sep"], where + ".sep");
                    var (cls, clsId) = TokenPair(node["cls"], where + ".cls");
                    return new TemplateProcessor(
                        [new(true, cls, 0), new(false, "A", 0), new(true, sep, 0)],
                        [new(true, cls, 0), new(false, "A", 0), new(true, sep, 0), new(false, "B", 1), new(true, sep, 1)],
                        new Dictionary<string, (int[], string[])> { [cls] = ([clsId], [cls]), [sep] = ([sepId], [sep]) });
                }
            case "RobertaProcessing":
                {
                    var (sep, sepId) = TokenPair(node["sep"], where + ".sep");
                    var (cls, clsId) = TokenPair(node["cls"], where + ".cls");
                    var t = new TemplateProcessor(
                        [new(true, cls, 0), new(false, "A", 0), new(true, sep, 0)],
                        [new(true, cls, 0), new(false, "A", 0), new(true, sep, 0), new(true, sep, 0), new(false, "B", 0), new(true, sep, 0)],
                        new Dictionary<string, (int[], string[])> { [cls] = ([clsId], [cls]), [sep] = ([sepId], [sep]) });
                    if (!Json.Bool(node, "trim_offsets", true)) return t;
                    return new SequenceProcessor([new ByteLevelProcessor(true, Json.Bool(node, "add_prefix_space", true)), t]);
                }
            case "Sequence":
                var list = node["processors"] as JsonArray
                    ?? throw new InvalidDataException($"{where}: Sequence post_processor has no 'processors' array");
                return new SequenceProcessor(list.Select((n, i) => FromJson(n, $"{where}.processors[{i}]") ?? throw new InvalidDataException($"{where}.processors[{i}]: null entry")).ToArray());
            default:
                throw new NotSupportedException($"{where}: post_processor type '{type}' is not supported");
        }
    }

    private static (string, int) TokenPair(JsonNode? n, string where)
    {
        if (n is JsonArray a && a.Count == 2) return (a[0]!.GetValue<string>(), a[1]!.GetValue<int>());
        throw new InvalidDataException($"{where}: expected [token, id]");
    }

    /// <summary>HF default when there is no post-processor: the pair is appended to the first sequence.</summary>
    public static RawEncoding Default(RawEncoding a, RawEncoding? b)
    {
        var r = new RawEncoding();
        r.AppendRange(a, 0, a.Count, seq: 0, overrideSeq: true);
        if (b is not null) r.AppendRange(b, 0, b.Count, seq: 1, overrideSeq: true);
        return r;
    }
}

internal readonly record struct TemplatePiece(bool IsSpecial, string Id, int TypeId);

internal sealed class TemplateProcessor(TemplatePiece[] single, TemplatePiece[] pair, Dictionary<string, (int[] Ids, string[] Tokens)> specials) : IPostProcessor
{
    public static TemplateProcessor FromJson(JsonNode node, string where)
    {
        var specials = new Dictionary<string, (int[], string[])>(StringComparer.Ordinal);
        if (node["special_tokens"] is JsonObject so)
        {
            foreach (var (k, v) in so)
            {
                var ids = (v?["ids"] as JsonArray)?.Select(x => (x ?? throw new InvalidDataException($"{where}.special_tokens['{k}'].ids: null entry")).GetValue<int>()).ToArray()
                    ?? throw new InvalidDataException($"{where}.special_tokens['{k}']: missing 'ids'");
                var toks = (v?["tokens"] as JsonArray)?.Select(x => (x ?? throw new InvalidDataException($"{where}.special_tokens['{k}'].tokens: null entry")).GetValue<string>()).ToArray()
                    ?? throw new InvalidDataException($"{where}.special_tokens['{k}']: missing 'tokens'");
                if (ids.Length != toks.Length) throw new InvalidDataException($"{where}.special_tokens['{k}']: ids and tokens differ in length");
                specials[k] = (ids, toks);
            }
        }
        var s = Pieces(node["single"], where + ".single", specials);
        var p = Pieces(node["pair"], where + ".pair", specials);
        return new TemplateProcessor(s, p, specials);
    }

    private static TemplatePiece[] Pieces(JsonNode? n, string where, Dictionary<string, (int[], string[])> specials)
    {
        if (n is not JsonArray a) throw new InvalidDataException($"{where}: expected an array of template pieces");
        var res = new List<TemplatePiece>();
        foreach (var item in a)
        {
            if (item?["SpecialToken"] is JsonObject st)
            {
                string id = Json.String(st, "id", where);
                if (!specials.ContainsKey(id)) throw new InvalidDataException($"{where}: special token '{id}' is not in special_tokens");
                res.Add(new TemplatePiece(true, id, Json.Int(st, "type_id", 0)));
            }
            else if (item?["Sequence"] is JsonObject sq)
            {
                string id = Json.String(sq, "id", where);
                if (id is not ("A" or "B")) throw new InvalidDataException($"{where}: sequence id '{id}' must be A or B");
                res.Add(new TemplatePiece(false, id, Json.Int(sq, "type_id", 0)));
            }
            else throw new InvalidDataException($"{where}: unexpected template piece {item?.ToJsonString()}");
        }
        return res.ToArray();
    }

    public int AddedTokens(bool isPair) =>
        (isPair ? pair : single).Where(p => p.IsSpecial).Sum(p => specials[p.Id].Ids.Length);

    public RawEncoding Process(RawEncoding a, RawEncoding? b, bool addSpecialTokens)
    {
        var r = new RawEncoding();
        foreach (var p in b is null ? single : pair)
        {
            if (p.IsSpecial)
            {
                if (!addSpecialTokens) continue;
                var (ids, toks) = specials[p.Id];
                for (int i = 0; i < ids.Length; i++) r.Add(ids[i], toks[i], (0, 0), null, p.TypeId, null, true);
            }
            else
            {
                var src = p.Id == "A" ? a : b!;
                r.AppendRange(src, 0, src.Count, p.TypeId, p.Id == "A" ? 0 : 1, overrideSeq: true);
            }
        }
        return r;
    }
}

/// <summary>ByteLevel post-processor: trims the offsets of tokens that start or end with (byte-level) spaces.</summary>
internal sealed class ByteLevelProcessor(bool trimOffsets, bool addPrefixSpace) : IPostProcessor
{
    public int AddedTokens(bool isPair) => 0;

    public RawEncoding Process(RawEncoding a, RawEncoding? b, bool addSpecialTokens)
    {
        if (trimOffsets)
        {
            Trim(a);
            if (b is not null) Trim(b);
        }
        return PostProcessors.Default(a, b);
    }

    private void Trim(RawEncoding e)
    {
        char space = ByteLevelMap.ByteToChar[' '];
        for (int i = 0; i < e.Count; i++)
        {
            string tok = e.Tokens[i];
            var (s, t) = e.Offsets[i];
            int lead = 0;
            while (lead < tok.Length && (tok[lead] == space || char.IsWhiteSpace(tok[lead]))) lead++;
            int trail = 0;
            while (trail < tok.Length && (tok[tok.Length - 1 - trail] == space || char.IsWhiteSpace(tok[tok.Length - 1 - trail]))) trail++;
            if (lead == 0 && trail == 0) continue;
            if (lead > 0)
            {
                bool first = i == 0 || s == 0;
                if (first && addPrefixSpace && lead == 1) lead = 0;
                s = Math.Min(s + lead, t);
            }
            if (trail > 0 && t >= trail) t = Math.Max(t - trail, s);
            e.Offsets[i] = (s, t);
        }
    }
}

internal sealed class SequenceProcessor(IPostProcessor[] items) : IPostProcessor
{
    public int AddedTokens(bool isPair) => items.Sum(p => p.AddedTokens(isPair));

    public RawEncoding Process(RawEncoding a, RawEncoding? b, bool addSpecialTokens)
    {
        // HF's Sequence passes the list of encodings through each processor in turn.
        RawEncoding? curA = a, curB = b;
        RawEncoding? merged = null;
        foreach (var p in items)
        {
            if (merged is not null) { merged = p.Process(merged, null, addSpecialTokens); continue; }
            var r = p.Process(curA!, curB, addSpecialTokens);
            if (p is ByteLevelProcessor) continue; // trimming works in place on the inputs
            merged = r;
        }
        return merged ?? PostProcessors.Default(curA!, curB);
    }
}
