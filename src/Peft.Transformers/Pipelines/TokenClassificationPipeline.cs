using Peft.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>How token predictions are fused into entities (HF <c>AggregationStrategy</c>).</summary>
public enum AggregationStrategy
{
    /// <summary>One result per token (HF "none").</summary>
    None,
    /// <summary>Adjacent tokens with the same tag (B-/I- aware) form one entity; words may get mixed tags (HF "simple").</summary>
    Simple,
    /// <summary>Words take the tag of their first token, then are grouped (HF "first").</summary>
    First,
    /// <summary>Words take the tag of their averaged token scores, then are grouped (HF "average").</summary>
    Average,
    /// <summary>Words take the tag of their highest-scoring token, then are grouped (HF "max").</summary>
    Max,
}

/// <summary>
/// Named-entity recognition / token classification (HF <c>TokenClassificationPipeline</c>, alias "ner"): softmax per
/// token, special tokens dropped, optional word and entity grouping, labels in <see cref="IgnoreLabels"/> ("O") removed.
/// </summary>
/// <param name="model">A token-classification model returning logits [1, T, C].</param>
/// <param name="tokenizer">Its tokenizer (offsets are needed for Start/End and word grouping).</param>
/// <param name="id2label">Tag names by id (config <c>id2label</c>), or null.</param>
public sealed class TokenClassificationPipeline(nn.Module<ModelInput, ModelOutput> model, IPipelineTokenizer tokenizer,
    IReadOnlyDictionary<int, string>? id2label = null) : Pipeline(model, tokenizer)
{
    /// <inheritdoc />
    public override string Task => "token-classification";

    /// <summary>Tag names by id.</summary>
    public IReadOnlyDictionary<int, string>? Id2Label { get; } = id2label;

    /// <summary>Tags left out of the results (HF <c>ignore_labels</c>, default ["O"]).</summary>
    public IReadOnlyList<string> IgnoreLabels { get; init; } = ["O"];

    /// <summary>A token's prediction before aggregation (HF "pre-entity").</summary>
    /// <param name="Word">Token text (the original text for unknown tokens).</param>
    /// <param name="TokenId">Token id.</param>
    /// <param name="Scores">Class probabilities.</param>
    /// <param name="Start">Start character.</param>
    /// <param name="End">End character.</param>
    /// <param name="Index">Token position.</param>
    /// <param name="IsSubword">True when the token continues the previous word.</param>
    public sealed record PreEntity(string Word, int TokenId, double[] Scores, int Start, int End, int Index, bool IsSubword);

    private sealed record TokenEntity(string Entity, double Score, string Word, IReadOnlyList<int> TokenIds, int Start, int End, int? Index);

    /// <summary>Tags the entities of <paramref name="text"/> with the given aggregation strategy.</summary>
    public IReadOnlyList<PipelineResult> Run(string text, AggregationStrategy aggregationStrategy)
    {
        ArgumentNullException.ThrowIfNull(text);
        var enc = Tokenizer.Encode(text);
        double[][] scores;
        using (NewDisposeScope())
        {
            var output = Forward(enc);
            var logits = output.Logits ?? throw new InvalidOperationException($"{Model.GetType().Name} returned no logits");
            var l = logits[0].to_type(ScalarType.Float32).contiguous();
            int t = (int)l.shape[0], c = (int)l.shape[1];
            var flat = l.data<float>().ToArray();
            scores = Enumerable.Range(0, t).Select(i => Softmax(flat.AsSpan(i * c, c))).ToArray();
        }
        return Postprocess(text, enc, scores, aggregationStrategy);
    }

    /// <summary>
    /// HF's post-processing from per-token probabilities (<paramref name="scores"/> [T][C]): gather pre-entities,
    /// aggregate words, group entities, drop ignored labels.
    /// </summary>
    public IReadOnlyList<PipelineResult> Postprocess(string text, PipelineEncoding enc, double[][] scores, AggregationStrategy aggregationStrategy)
    {
        var pre = GatherPreEntities(text, enc, scores);
        List<TokenEntity> entities;
        if (aggregationStrategy is AggregationStrategy.None or AggregationStrategy.Simple)
        {
            entities = pre.Select(p =>
            {
                int best = ArgMax(p.Scores);
                return new TokenEntity(LabelOf(Id2Label, best), p.Scores[best], p.Word, [p.TokenId], p.Start, p.End, p.Index);
            }).ToList();
        }
        else entities = AggregateWords(pre, aggregationStrategy);

        IEnumerable<PipelineResult> results = aggregationStrategy == AggregationStrategy.None
            ? entities.Select(e => new PipelineResult { Entity = e.Entity, Score = e.Score, Index = e.Index, Word = e.Word, Start = e.Start, End = e.End })
            : GroupEntities(entities);
        return results.Where(r => !IgnoreLabels.Contains(r.Entity!)).ToList();
    }

    /// <summary>
    /// One pre-entity per non-special token. A token is a sub-word when it continues the previous word: by word ids when
    /// the tokenizer gives them, else as HF's offsets test (WordPiece: token text longer than its span; otherwise: no
    /// space just before the token).
    /// </summary>
    public List<PreEntity> GatherPreEntities(string text, PipelineEncoding enc, double[][] scores)
    {
        var result = new List<PreEntity>();
        int? previousWord = -1;
        for (int i = 0; i < enc.Ids.Count; i++)
        {
            if (enc.SpecialTokensMask[i]) continue;
            int id = enc.Ids[i];
            var (start, end) = enc.Offsets[i];
            var word = Tokenizer.IdToToken(id) ?? "";
            var wordRef = text[start..end];
            bool isSubword;
            if (enc.WordIds is { } wordIds)
            {
                isSubword = wordIds[i] == previousWord && result.Count > 0;
                previousWord = wordIds[i];
            }
            else if (Tokenizer.HasContinuingSubwordPrefix) isSubword = word.Length != wordRef.Length;
            else isSubword = start > 0 && !text.AsSpan(start - 1, Math.Min(2, text.Length - start + 1)).Contains(' ');
            if (Tokenizer.UnkTokenId == id)
            {
                word = wordRef;
                isSubword = false;
            }
            result.Add(new PreEntity(word, id, scores[i], start, end, i, isSubword));
        }
        return result;
    }

    private List<TokenEntity> AggregateWords(List<PreEntity> pre, AggregationStrategy strategy)
    {
        var words = new List<TokenEntity>();
        var group = new List<PreEntity>();
        foreach (var p in pre)
        {
            if (group.Count > 0 && !p.IsSubword)
            {
                words.Add(AggregateWord(group, strategy));
                group = [];
            }
            group.Add(p);
        }
        if (group.Count > 0) words.Add(AggregateWord(group, strategy));
        return words;
    }

    private TokenEntity AggregateWord(List<PreEntity> tokens, AggregationStrategy strategy)
    {
        double[] scores = strategy switch
        {
            AggregationStrategy.First => tokens[0].Scores,
            AggregationStrategy.Max => tokens.MaxBy(t => t.Scores.Max())!.Scores,
            AggregationStrategy.Average => Enumerable.Range(0, tokens[0].Scores.Length).Select(c => tokens.Average(t => t.Scores[c])).ToArray(),
            _ => throw new ArgumentOutOfRangeException(nameof(strategy), strategy, "word aggregation needs first, average or max"),
        };
        int best = ArgMax(scores);
        var ids = tokens.Select(t => t.TokenId).ToList();
        return new TokenEntity(LabelOf(Id2Label, best), scores[best], WordOf(tokens.Select(t => (t.TokenId, t.Word)).ToList()), ids, tokens[0].Start, tokens[^1].End, null);
    }

    private string WordOf(IReadOnlyList<(int Id, string Word)> tokens) =>
        tokens.Any(t => t.Id == Tokenizer.UnkTokenId)
            ? string.Join(" ", tokens.Select(t => t.Word)).Replace(" ##", "", StringComparison.Ordinal)
            : Tokenizer.Decode(tokens.Select(t => t.Id), skipSpecialTokens: false).Trim();

    private List<PipelineResult> GroupEntities(List<TokenEntity> entities)
    {
        var groups = new List<PipelineResult>();
        var current = new List<TokenEntity>();
        foreach (var e in entities)
        {
            if (current.Count == 0) { current.Add(e); continue; }
            var (bi, tag) = GetTag(e.Entity);
            var (_, lastTag) = GetTag(current[^1].Entity);
            if (tag == lastTag && bi != "B") current.Add(e);
            else
            {
                groups.Add(GroupSubEntities(current));
                current = [e];
            }
        }
        if (current.Count > 0) groups.Add(GroupSubEntities(current));
        return groups;
    }

    private PipelineResult GroupSubEntities(List<TokenEntity> group)
    {
        var entity = group[0].Entity.Split('-')[^1];
        var tokens = group.SelectMany(g => g.TokenIds).ToList();
        var words = group.Select(g => g.Word).ToList();
        string word = tokens.Any(t => t == Tokenizer.UnkTokenId)
            ? string.Join(" ", words).Replace(" ##", "", StringComparison.Ordinal)
            : Tokenizer.Decode(tokens, skipSpecialTokens: false).Trim();
        return new PipelineResult { Entity = entity, Score = group.Average(g => g.Score), Word = word, Start = group[0].Start, End = group[^1].End };
    }

    /// <summary>Splits "B-PER" into ("B", "PER"); a tag without a B-/I- prefix counts as a continuation ("I").</summary>
    public static (string Bi, string Tag) GetTag(string entityName) =>
        entityName.StartsWith("B-", StringComparison.Ordinal) ? ("B", entityName[2..])
        : entityName.StartsWith("I-", StringComparison.Ordinal) ? ("I", entityName[2..])
        : ("I", entityName);

    private static int ArgMax(double[] x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    /// <inheritdoc />
    protected override IReadOnlyList<PipelineResult> RunDefault(string input, GenerationConfig? generationConfig) =>
        Run(input, AggregationStrategy.None);
}
