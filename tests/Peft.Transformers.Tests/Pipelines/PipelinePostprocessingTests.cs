using Peft.Core;
using Peft.Transformers.Tests.Generation;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Pipelines;

/// <summary>HF pipeline post-processing on crafted logits, where the expected answers follow from the rules by hand.</summary>
public sealed class PipelinePostprocessingTests
{
    private static readonly Dictionary<int, string> NerLabels = new()
    {
        [0] = "O", [1] = "B-PER", [2] = "I-PER", [3] = "B-ORG", [4] = "I-ORG", [5] = "B-LOC", [6] = "I-LOC",
    };

    // "Hugging Face is in New York ." -> [CLS] Hu ##gging Face is in New York . [SEP]
    private static readonly FakeWordPieceTokenizer NerTok = new(["Hu", "##gging", "Face", "is", "in", "New", "York", "."]);

    /// <summary>Logits that put 5.0 on the wanted tag of each token, 0 elsewhere.</summary>
    private static FixedLogitsModel Tagger(params int[] tags) => new(ids =>
    {
        var l = zeros(1, ids.Length, 7);
        for (int t = 0; t < ids.Length; t++) l[0, t, tags[t]] = 5.0f;
        return new ModelOutput { Logits = l };
    });

    [Fact]
    public void Ner_without_aggregation_returns_one_entity_per_tagged_token()
    {
        //                       CLS Hu ##gging Face is in New York . SEP
        var m = Tagger(0, 3, 4, 4, 0, 0, 5, 6, 0, 0);
        var p = new TokenClassificationPipeline(m, NerTok, NerLabels);
        var r = p.Run("Hugging Face is in New York .", AggregationStrategy.None);
        Assert.Equal(["B-ORG", "I-ORG", "I-ORG", "B-LOC", "I-LOC"], r.Select(x => x.Entity));
        Assert.Equal(["Hu", "##gging", "Face", "New", "York"], r.Select(x => x.Word));
        Assert.Equal([1, 2, 3, 6, 7], r.Select(x => x.Index!.Value));
        Assert.Equal((0, 2), (r[0].Start!.Value, r[0].End!.Value));
        Assert.Equal((2, 7), (r[1].Start!.Value, r[1].End!.Value));
        double expected = Math.Exp(5) / (Math.Exp(5) + 6);
        Assert.All(r, x => Assert.Equal(expected, x.Score!.Value, 12));
    }

    [Fact]
    public void Ner_simple_groups_adjacent_tags_and_splits_on_B()
    {
        var m = Tagger(0, 3, 4, 4, 0, 0, 5, 5, 0, 0);   // York tagged B-LOC: a new entity
        var p = new TokenClassificationPipeline(m, NerTok, NerLabels);
        var text = "Hugging Face is in New York .";
        var r = p.Run(text, AggregationStrategy.Simple);
        Assert.Equal(["ORG", "LOC", "LOC"], r.Select(x => x.Entity));
        Assert.Equal(["Hugging Face", "New", "York"], r.Select(x => x.Word));
        Assert.Equal("Hugging Face", text[r[0].Start!.Value..r[0].End!.Value]);
        Assert.Equal("York", text[r[2].Start!.Value..r[2].End!.Value]);
    }

    [Fact]
    public void Ner_word_strategies_force_one_tag_per_word()
    {
        // "Hu" says B-PER (weakly), "##gging" says B-ORG strongly: first -> PER word, max -> ORG word
        var m = new FixedLogitsModel(ids =>
        {
            var l = zeros(1, ids.Length, 7);
            l[0, 1, 1] = 2.0f; l[0, 1, 3] = 1.0f;   // Hu: B-PER 2, B-ORG 1
            l[0, 2, 3] = 6.0f;                        // ##gging: B-ORG 6
            l[0, 3, 4] = 5.0f;                        // Face: I-ORG
            for (int t = 4; t < ids.Length; t++) l[0, t, 0] = 5.0f;
            l[0, 0, 0] = 5.0f;
            return new ModelOutput { Logits = l };
        });
        var p = new TokenClassificationPipeline(m, NerTok, NerLabels);
        var text = "Hugging Face is in New York .";
        var first = p.Run(text, AggregationStrategy.First);
        Assert.Equal(["PER", "ORG"], first.Select(x => x.Entity));
        Assert.Equal(["Hugging", "Face"], first.Select(x => x.Word));
        var max = p.Run(text, AggregationStrategy.Max);
        Assert.Single(max);
        Assert.Equal("ORG", max[0].Entity);
        Assert.Equal("Hugging Face", max[0].Word);
        Assert.Equal((0, 12), (max[0].Start!.Value, max[0].End!.Value));
        var avg = p.Run(text, AggregationStrategy.Average);
        // average over Hu and ##gging: B-ORG wins ((p(Hu,B-ORG) + p(gging,B-ORG)) / 2 is the largest)
        Assert.Equal("ORG", avg[0].Entity);
        Assert.Equal("Hugging Face", avg[0].Word);
    }

    [Fact]
    public void Qa_picks_the_best_span_inside_the_context_with_char_offsets()
    {
        var tok = new FakeWordPieceTokenizer(["Where", "does", "Sarah", "live", "?", "My", "name", "is", "and", "I", "in", "London", "Lon", "##don", "."]);
        const string question = "Where does Sarah live?";
        const string context = "My name is Sarah and I live in London.";
        var enc = tok.Encode(question, context);
        int london = enc.Ids.ToList().IndexOf(tok.Id("London"));
        int sarahQ = enc.Ids.ToList().IndexOf(tok.Id("Sarah"));     // in the question: must never be chosen
        var m = new FixedLogitsModel(ids =>
        {
            var s = zeros(1, ids.Length); var e = zeros(1, ids.Length);
            s[0, sarahQ] = 20f; e[0, sarahQ] = 20f;
            s[0, london] = 8f; e[0, london] = 8f;
            return new ModelOutput { StartLogits = s, EndLogits = e };
        });
        var p = new QuestionAnsweringPipeline(m, tok);
        var r = p.Run(question, context);
        Assert.Single(r);
        Assert.Equal("London", r[0].Answer);
        Assert.Equal(context.IndexOf("London", StringComparison.Ordinal), r[0].Start);
        Assert.Equal(r[0].Start + 6, r[0].End);
        Assert.Equal(r[0].Answer, context[r[0].Start!.Value..r[0].End!.Value]);
        Assert.NotNull(m.LastTypeIds);   // the pair's segment ids reach the model

        var top3 = p.Run(question, context, topK: 3);
        Assert.Equal(3, top3.Count);
        Assert.True(top3[0].Score >= top3[1].Score && top3[1].Score >= top3[2].Score);
        Assert.All(top3, a => Assert.Equal(a.Answer, context[a.Start!.Value..a.End!.Value]));
    }

    [Fact]
    public void Qa_max_answer_len_and_impossible_answer()
    {
        var tok = new FakeWordPieceTokenizer(["q", "a", "b", "c", "d"]);
        var enc = tok.Encode("q", "a b c d");
        // [CLS] q [SEP] a b c d [SEP]: start on a (3), end on d (6); CLS very likely
        var m = new FixedLogitsModel(ids =>
        {
            var s = zeros(1, ids.Length); var e = zeros(1, ids.Length);
            s[0, 3] = 6f; e[0, 6] = 6f; e[0, 4] = 3f; s[0, 0] = 12f; e[0, 0] = 12f;
            return new ModelOutput { StartLogits = s, EndLogits = e };
        });
        var p = new QuestionAnsweringPipeline(m, tok);
        Assert.Equal("a b c d", p.Run("q", "a b c d")[0].Answer);
        Assert.Equal("a b", p.Run("q", "a b c d", maxAnswerLen: 2)[0].Answer);
        var none = p.Run("q", "a b c d", handleImpossibleAnswer: true);
        Assert.Equal("", none[0].Answer);
        Assert.Equal((0, 0), (none[0].Start!.Value, none[0].End!.Value));
    }

    [Fact]
    public void Text_classification_uses_id2label_top_k_and_function()
    {
        var tok = new FakeWordPieceTokenizer(["good", "movie"]);
        var labels = new Dictionary<int, string> { [0] = "NEGATIVE", [1] = "POSITIVE", [2] = "NEUTRAL" };
        var m = new FixedLogitsModel(_ => new ModelOutput { Logits = tensor(new float[] { 0.5f, 2.0f, -1.0f }, [1, 3]) });
        var p = new TextClassificationPipeline(m, tok, labels);
        var best = p.Run("good movie");
        Assert.Single(best);
        Assert.Equal("POSITIVE", best[0].Label);
        double z = Math.Exp(0.5) + Math.Exp(2.0) + Math.Exp(-1.0);
        Assert.Equal(Math.Exp(2.0) / z, best[0].Score!.Value, 12);
        var all = p.Run("good movie", topK: null);
        Assert.Equal(["POSITIVE", "NEGATIVE", "NEUTRAL"], all.Select(r => r.Label));
        Assert.Equal(1.0, all.Sum(r => r.Score!.Value), 12);
        var sig = p.Run("good movie", topK: null, ClassificationFunction.Sigmoid);
        Assert.Equal(1 / (1 + Math.Exp(-2.0)), sig[0].Score!.Value, 12);
        var multi = new TextClassificationPipeline(m, tok, labels, "multi_label_classification").Run("good movie", topK: 1);
        Assert.Equal(1 / (1 + Math.Exp(-2.0)), multi[0].Score!.Value, 12);
        var unnamed = new TextClassificationPipeline(m, tok).Run("good movie", topK: 1);
        Assert.Equal("LABEL_1", unnamed[0].Label);
    }

    [Fact]
    public void Fill_mask_ranks_tokens_and_fills_the_sequence()
    {
        var tok = new FakeWordPieceTokenizer(["Paris", "is", "the", "capital", "London", "."]);
        int paris = tok.Id("Paris"), london = tok.Id("London");
        var m = new FixedLogitsModel(ids =>
        {
            var l = zeros(1, ids.Length, tok.VocabSize);
            int pos = Array.IndexOf(ids, 4L);
            l[0, pos, paris] = 4f; l[0, pos, london] = 3f;
            return new ModelOutput { Logits = l };
        });
        var p = new FillMaskPipeline(m, tok);
        var r = p.Run("[MASK] is the capital .", topK: 2);
        Assert.Equal([paris, london], r.Select(x => x.Token!.Value));
        Assert.Equal("Paris", r[0].TokenStr);
        Assert.Equal("Paris is the capital.", r[0].Sequence);
        Assert.True(r[0].Score > r[1].Score);
        Assert.Throws<ArgumentException>(() => p.Run("no mask here", topK: 2));
    }

    [Fact]
    public void Text_generation_returns_full_or_new_text_per_sequence()
    {
        // a character-level tokenizer over the toy model's 23-token vocabulary
        var tok = new CharTokenizer();
        var lm = new ToyCausalLM();
        var gen = new TextGenerationPipeline(lm, tok);
        var greedy = new GenerationConfig { MaxNewTokens = 5, DoSample = false };
        var full = gen.Run("abc", greedy);
        var only = gen.Run("abc", greedy, returnFullText: false);
        Assert.Single(full);
        Assert.Equal("abc" + only[0].GeneratedText, full[0].GeneratedText);
        Assert.Equal(5, only[0].GeneratedText!.Length);
        var many = gen.Run("abc", new GenerationConfig { MaxNewTokens = 4, DoSample = true, Seed = 3, NumReturnSequences = 3 }, returnFullText: true);
        Assert.Equal(3, many.Count);
        Assert.All(many, r => Assert.StartsWith("abc", r.GeneratedText));
        var batch = gen.Run(["abc", "de"], new GenerationConfig { MaxLength = 6, DoSample = false });
        Assert.Equal(6, batch[0][0].GeneratedText!.Length);
        Assert.Equal(6, batch[1][0].GeneratedText!.Length);
        Assert.Equal(only[0].GeneratedText, string.Concat(gen.Stream("abc", greedy)));
    }

    private sealed class CharTokenizer : IPipelineTokenizer
    {
        public PipelineEncoding Encode(string text, string? pair = null, bool addSpecialTokens = true, int? maxLength = null, int stride = 0) =>
            new(text.Select(c => c - 'a').ToList(), text.Select((_, i) => (i, i + 1)).ToList(), text.Select(_ => false).ToList(),
                text.Select(_ => (int?)0).ToList(), text.Select(_ => 0).ToList());
        public string Decode(IEnumerable<int> ids, bool skipSpecialTokens) => string.Concat(ids.Select(i => (char)('a' + i)));
        public string? IdToToken(int id) => ((char)('a' + id)).ToString();
        public int? UnkTokenId => null;
        public int? MaskTokenId => null;
        public int? PadTokenId => null;
        public int? ClsTokenId => null;
        public bool HasContinuingSubwordPrefix => false;
    }
}
