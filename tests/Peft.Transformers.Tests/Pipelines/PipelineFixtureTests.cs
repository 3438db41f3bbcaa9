using Peft.Core;
using Peft.Testing;
using Peft.Transformers.Generation;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Pipelines;

/// <summary>Pipelines on the tiny fixture models and their real tokenizers.</summary>
public sealed class PipelineFixtureTests
{
    [Theory]
    [InlineData("gpt2-tiny")]
    [InlineData("llama-tiny")]
    public void Text_generation_pipeline_decodes_what_generate_produces(string name)
    {
        using var gen = Pipeline.Create("text-generation", Fixtures.Model(name));
        const string prompt = "Two things are infinite:";
        var res = gen.Run(prompt, new GenerationConfig { MaxNewTokens = 16, DoSample = false });
        Assert.Single(res);
        Assert.StartsWith(prompt, res[0].GeneratedText);

        var tok = AutoTokenizer.FromPretrained(Fixtures.Model(name));
        var ids = tok.Encode(prompt);
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name));
        using var input = tensor(ids.Select(x => (long)x).ToArray(), [1, ids.Count]);
        using var expected = model.Generate(input, null, new GenerationConfig { MaxNewTokens = 16 });
        var expectedIds = expected[0].data<long>().Select(x => (int)x).ToArray();
        Assert.Equal(expectedIds, res[0].GeneratedTokenIds);
        // transformers 5.x: prompt + decode(new tokens) (see TextGenerationReferenceTests for Python's strings)
        var decoded = tok.Decode(expectedIds[ids.Count..], skipSpecialTokens: true);
        Assert.Equal(prompt + decoded, res[0].GeneratedText);

        var typed = (TextGenerationPipeline)gen;
        var newOnly = typed.Run(prompt, new GenerationConfig { MaxNewTokens = 16, DoSample = false }, returnFullText: false);
        Assert.Equal(decoded, newOnly[0].GeneratedText);

        // HF pipeline defaults: sampling at temperature 0.7, 256 new tokens, under the model's generation_config.json
        Assert.True(typed.EffectiveDefaults.DoSample);
        Assert.Equal(0.7, typed.EffectiveDefaults.Temperature);
        Assert.Equal(256, typed.EffectiveDefaults.MaxNewTokens);
        // the seed's use: num_return_sequences and max_length, sampling by default
        var many = typed.Run(prompt, new GenerationConfig { MaxLength = ids.Count + 10, Seed = 3, NumReturnSequences = 3 }, returnFullText: true);
        var again = typed.Run(prompt, new GenerationConfig { MaxLength = ids.Count + 10, Seed = 3, NumReturnSequences = 3 }, returnFullText: true);
        Assert.Equal(many.Select(m => m.GeneratedText), again.Select(m => m.GeneratedText));
        Assert.Equal(3, many.Count);
        Assert.All(many, r => Assert.True(r.GeneratedTokenIds!.Count <= ids.Count + 10));
        Assert.All(many, r => Assert.StartsWith(prompt, r.GeneratedText));
    }

    [Fact]
    public void Text_generation_over_an_already_loaded_module_and_streaming()
    {
        var dir = Fixtures.Model("opt-tiny");
        using var model = AutoModelForCausalLM.FromPretrained(dir);
        var tok = AutoTokenizer.FromPretrained(dir);
        // a plain Module<ModelInput, ModelOutput> view of the model, as a PeftModel would be: config given explicitly
        var gen = (TextGenerationPipeline)Pipeline.Create("text-generation", new ForwardOnly(model), tok, generationConfig: model.GenerationConfig);
        var greedy = new GenerationConfig { MaxNewTokens = 12, DoSample = false };
        var full = gen.Run("The secret of life", greedy, returnFullText: false);
        var streamed = string.Concat(gen.Stream("The secret of life", greedy));
        Assert.Equal(full[0].GeneratedText, streamed);
    }

    private sealed class ForwardOnly(PreTrainedModel inner) : nn.Module<ModelInput, ModelOutput>("forward_only")
    {
        public override ModelOutput forward(ModelInput input) => inner.forward(input);
    }

    [Theory]
    [InlineData("text-classification")]
    [InlineData("sentiment-analysis")]
    public void Text_classification_labels_come_from_id2label(string task)
    {
        var dir = Fixtures.Model("bert-tiny");
        using var clf = Pipeline.Create(task, dir);
        const string text = "Computers are useless. They can only give you answers.";
        var best = clf.Run(text);
        Assert.Single(best);
        string[] names = ["computers", "politics", "science", "work", "art"];
        Assert.Contains(best[0].Label, names);
        var all = ((TextClassificationPipeline)clf).Run(text, topK: null);
        Assert.Equal(names.Order(), all.Select(r => r.Label!).Order());
        Assert.Equal(1.0, all.Sum(r => r.Score!.Value), 6);
        Assert.Equal(best[0], all[0]);

        // the label is the argmax of the model's own logits
        using var model = AutoModelForSequenceClassification.FromPretrained(dir);
        var tok = AutoTokenizer.FromPretrained(dir);
        var enc = tok.EncodeWithOffsets(text);
        using var ids = tensor(enc.Ids.Select(x => (long)x).ToArray(), [1, enc.Ids.Count]);
        using var scope = NewDisposeScope();
        var logits = model.forward(new ModelInput { InputIds = ids, AttentionMask = ones_like(ids) }).Logits!;
        Assert.Equal(names[logits.argmax(-1).item<long>()], best[0].Label);
        Assert.Equal(logits.softmax(-1).max().item<float>(), best[0].Score!.Value, 5);
    }

    [Fact]
    public void Ner_on_the_fixture_gives_valid_entities_and_offsets()
    {
        using var ner = Pipeline.Create("ner", Fixtures.Model("bert-ner-tiny"));
        const string text = "Albert Einstein lived in the city of Princeton with his friends.";
        string[] tags = ["B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"];
        var tokens = ner.Run(text);
        Assert.All(tokens, e =>
        {
            Assert.Contains(e.Entity, tags);
            Assert.InRange(e.Start!.Value, 0, text.Length);
            Assert.InRange(e.End!.Value, e.Start!.Value + 1, text.Length);
            Assert.InRange(e.Score!.Value, 0.0, 1.0);
        });
        foreach (var strategy in new[] { AggregationStrategy.Simple, AggregationStrategy.First, AggregationStrategy.Average, AggregationStrategy.Max })
        {
            var groups = ((TokenClassificationPipeline)ner).Run(text, strategy);
            Assert.All(groups, g =>
            {
                Assert.Contains(g.Entity, new[] { "PER", "ORG", "LOC", "MISC" });
                Assert.Equal(text[g.Start!.Value..g.End!.Value].Replace(" ", ""), g.Word!.Replace(" ", ""));
            });
            if (strategy != AggregationStrategy.Simple)
            {
                // word strategies never cut a word: every group starts and ends on a word boundary
                Assert.All(groups, g => Assert.True(g.Start == 0 || !char.IsLetterOrDigit(text[g.Start!.Value - 1]), $"{strategy}: group '{g.Word}' starts inside a word"));
                Assert.All(groups, g => Assert.True(g.End == text.Length || !char.IsLetterOrDigit(text[g.End!.Value]), $"{strategy}: group '{g.Word}' ends inside a word"));
            }
        }
    }

    [Fact]
    public void Ner_grouping_on_a_crafted_case_with_the_real_wordpiece_tokenizer()
    {
        var dir = Fixtures.Model("bert-ner-tiny");
        var tok = AutoTokenizer.FromPretrained(dir);
        const string text = "Albert Einstein lived in Princeton";
        var enc = tok.EncodeWithOffsets(text);
        // tag by word (first piece / later pieces): Albert B-PER/I-PER, Einstein I-PER, lived/in O, Princeton B-LOC/O
        int[] wordTag = [1, 2, 0, 0, 5];
        int[] pieceTag = [2, 2, 0, 0, 0];
        var model = new FixedLogitsModel(ids =>
        {
            var l = zeros(1, ids.Length, 9);
            for (int t = 0; t < ids.Length; t++)
            {
                int tag = 0;
                if (enc.WordIds[t] is int w)
                {
                    bool firstPiece = t == 0 || enc.WordIds[t - 1] != w;
                    tag = firstPiece ? wordTag[w] : pieceTag[w];
                }
                l[0, t, tag] = 6f;
            }
            return new ModelOutput { Logits = l };
        });
        var config = AutoConfig.FromPretrained(dir);
        var ner = (TokenClassificationPipeline)Pipeline.Create("token-classification", model, tok, config);
        var first = ner.Run(text, AggregationStrategy.First);
        Assert.Equal(["PER", "LOC"], first.Select(e => e.Entity));
        Assert.Equal("Albert Einstein", first[0].Word);
        Assert.Equal("Albert Einstein", text[first[0].Start!.Value..first[0].End!.Value]);
        Assert.Equal("Princeton", text[first[1].Start!.Value..first[1].End!.Value]);
        Assert.Equal("Princeton", first[1].Word);
        var simple = ner.Run(text, AggregationStrategy.Simple);
        Assert.Equal("Albert Einstein", simple[0].Word);
        Assert.Equal("PER", simple[0].Entity);
        int princetonPieces = enc.WordIds.Count(w => w == 4);
        if (princetonPieces > 1)
            Assert.NotEqual("Princeton", simple[^1].Word);   // simple keeps only the B-LOC piece
    }

    [Fact]
    public void Qa_answer_lies_in_the_context_and_is_the_best_span()
    {
        var dir = Fixtures.Model("bert-qa-tiny");
        using var qa = Pipeline.QuestionAnswering(dir);
        const string question = "Where does the author live?";
        const string context = "The author of this book lives in a small house near the sea, far from the city.";
        var r = qa.Run(question, context, topK: 3);
        Assert.NotEmpty(r);
        Assert.All(r, a =>
        {
            Assert.InRange(a.Start!.Value, 0, context.Length);
            Assert.InRange(a.End!.Value, a.Start!.Value + 1, context.Length);
            Assert.Equal(context[a.Start!.Value..a.End!.Value], a.Answer);
            Assert.InRange(a.Score!.Value, 0.0, 1.0);
        });
        for (int i = 1; i < r.Count; i++) Assert.True(r[i - 1].Score >= r[i].Score);

        // independent check of the best span from the raw logits: softmax over context tokens, max p_s·p_e, e ≥ s, len ≤ 15
        var tok = AutoTokenizer.FromPretrained(dir);
        var enc = tok.EncodePair(question, context);
        using var model = AutoModelForQuestionAnswering.FromPretrained(dir);
        using var scope = NewDisposeScope();
        var ids = tensor(enc.Ids.Select(x => (long)x).ToArray(), [1, enc.Ids.Count]);
        var types = tensor(enc.TypeIds.Select(x => (long)x).ToArray(), [1, enc.Ids.Count]);
        var o = model.forward(new ModelInput { InputIds = ids, AttentionMask = ones_like(ids), TokenTypeIds = types });
        var ctx = Enumerable.Range(0, enc.Ids.Count).Where(i => enc.SequenceIds[i] == 1).ToArray();
        var sl = o.StartLogits!.reshape(-1).data<float>().ToArray();
        var el = o.EndLogits!.reshape(-1).data<float>().ToArray();
        int cls = enc.Ids.ToList().IndexOf(tok.ClsTokenId!.Value);
        var keep = ctx.Append(cls).ToArray();
        double zs = keep.Sum(i => Math.Exp(sl[i])), ze = keep.Sum(i => Math.Exp(el[i]));
        (double score, int s, int e) best = (-1, 0, 0);
        foreach (var s in ctx) foreach (var e in ctx)
            if (e >= s && e - s < 15 && Math.Exp(sl[s]) / zs * Math.Exp(el[e]) / ze > best.score) best = (Math.Exp(sl[s]) / zs * Math.Exp(el[e]) / ze, s, e);
        Assert.Equal(best.score, r[0].Score!.Value, 5);
        Assert.True(r[0].Start <= enc.Offsets[best.s].Start && r[0].End >= enc.Offsets[best.e].End, "the answer covers the best token span");
    }

    [Fact]
    public void Qa_long_context_is_read_in_overlapping_windows()
    {
        using var qa = Pipeline.QuestionAnswering(Fixtures.Model("bert-qa-tiny"));
        const string question = "Who wrote the letter?";
        var context = string.Join(" ", Enumerable.Repeat("The old man walked to the market and bought bread for his family.", 6))
                      + " The letter was written by a young poet from the north.";
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("bert-qa-tiny"));
        var single = tok.EncodePair(question, context, maxLength: 48, strategy: TruncationStrategy.OnlySecond);
        int firstWindowEnd = single.Offsets.Where((_, i) => single.SequenceIds[i] == 1).Max(o => o.End);
        var r = qa.Run(question, context, topK: 200, maxSeqLen: 48, docStride: 16);
        Assert.All(r, a => Assert.Equal(context[a.Start!.Value..a.End!.Value], a.Answer));
        Assert.Contains(r, a => a.Start >= firstWindowEnd);      // later windows were read
        for (int i = 1; i < r.Count; i++) Assert.True(r[i - 1].Score >= r[i].Score);
    }

    [Fact]
    public void Fill_mask_and_feature_extraction_on_bert()
    {
        var dir = Fixtures.Model("bert-tiny");
        using var fill = Pipeline.FillMask(dir);
        var tok = AutoTokenizer.FromPretrained(dir);
        var r = fill.Run("The meaning of life is [MASK].", topK: 4);
        Assert.Equal(4, r.Count);
        for (int i = 1; i < r.Count; i++) Assert.True(r[i - 1].Score >= r[i].Score);
        Assert.True(r.Sum(x => x.Score!.Value) <= 1.0 + 1e-9);
        Assert.All(r, x => Assert.StartsWith("The meaning of life", x.Sequence));
        Assert.Equal(4, r.Select(x => x.Sequence).Distinct().Count());
        Assert.All(r, x => Assert.Equal(tok.Decode([x.Token!.Value]), x.TokenStr));

        using var fe = Pipeline.FeatureExtraction(dir);
        var feats = fe.Extract("The meaning of life");
        Assert.Equal(tok.Encode("The meaning of life").Count, feats.Length);
        Assert.All(feats, row => Assert.Equal(64, row.Length));
        Assert.NotNull(fe.Run("x")[0].Features);
        Assert.Throws<ArgumentException>(() => Pipeline.Create("summarization", dir));
    }
}

[Collection(LeakTestCollection.Name)]
public sealed class PipelineLeakTests
{
    [Fact]
    public void Pipelines_leak_no_tensors()
    {
        using var gen = Pipeline.TextGeneration(Fixtures.Model("gpt2-tiny"));
        var greedy = new GenerationConfig { MaxNewTokens = 4, DoSample = false };
        LeakCheck.AssertNoGrowth(() => gen.Run("Two things", greedy), 5, what: "text-generation");
        LeakCheck.AssertNoGrowth(() => string.Concat(gen.Stream("Two things", greedy)), 5, what: "text-generation stream");
        using var clf = Pipeline.TextClassification(Fixtures.Model("bert-tiny"));
        LeakCheck.AssertNoGrowth(() => clf.Run("Art is long."), 5, what: "text-classification");
        using var ner = Pipeline.TokenClassification(Fixtures.Model("bert-ner-tiny"));
        LeakCheck.AssertNoGrowth(() => ner.Run("Albert lived in Princeton", AggregationStrategy.Average), 5, what: "ner");
        using var qa = Pipeline.QuestionAnswering(Fixtures.Model("bert-qa-tiny"));
        LeakCheck.AssertNoGrowth(() => qa.Run("Who?", "Albert lived in Princeton."), 5, what: "qa");
    }
}
