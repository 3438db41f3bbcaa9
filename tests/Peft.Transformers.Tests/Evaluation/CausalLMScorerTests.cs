using Peft.Core;
using Peft.Evaluate;
using Peft.Testing;
using Peft.Transformers.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Evaluation;

/// <summary>
/// The perplexity adapter: its per-token log-probabilities reproduce the model's own causal-LM loss (itself proven
/// against HF by the model parity tests), do not depend on batching, and drive <c>Metrics.Load("perplexity")</c>.
/// </summary>
public sealed class CausalLMScorerTests
{
    public static TheoryData<string> CausalModels => new() { "gpt2-tiny", "opt-tiny", "llama-tiny", "qwen2-tiny" };

    private static readonly string[] Texts =
    [
        "The quick brown fox jumps over the lazy dog.",
        "Hello world",
        "Peft.NET brings LoRA to C#, with the same numbers as Python.",
        "a",
        "Once upon a time, in a land far away, there lived a small dragon who liked tea.",
    ];

    /// <summary>Qwen2's tokenizer has no BOS token (HF's metric would fail with add_start_token=True too).</summary>
    private static bool HasBos(string name) => name != "qwen2-tiny";

    /// <summary>exp(model loss with labels = input_ids) for one sequence of ids: HF's causal-LM loss, mean over shifted tokens.</summary>
    private static double LossPerplexity(nn.Module<ModelInput, ModelOutput> model, IReadOnlyList<int> ids)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var t = tensor(ids.Select(x => (long)x).ToArray(), [1, ids.Count]);
        var loss = model.forward(new ModelInput { InputIds = t, Labels = t }).Loss!;
        return Math.Exp(loss.item<float>());
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Perplexity_of_one_text_equals_exp_of_the_model_loss(string name)
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name));
        var scorer = new CausalLMScorer(model, AutoTokenizer.FromPretrained(Fixtures.Model(name)));
        bool bos = HasBos(name);
        foreach (var text in new[] { Texts[0], Texts[2] })
        {
            var ids = scorer.TokenIds(text, bos, null);
            if (bos) Assert.Equal(scorer.Tokenizer.BosTokenId, ids[0]);
            Assert.Equal(scorer.Tokenizer.Encode(text, addSpecialTokens: false), ids.Skip(bos ? 1 : 0));
            var lp = Assert.Single(scorer.TokenLogProbabilities([text], bos, null, 1));
            Assert.Equal(ids.Count - 1, lp.Count);
            Assert.All(lp, v => Assert.True(v <= 0, $"log-probability {v} > 0"));
            double ppl = Math.Exp(-lp.Average()), expected = LossPerplexity(model, ids);
            Assert.True(Math.Abs(ppl - expected) <= 1e-5 * expected, $"{name}: perplexity {ppl} vs exp(loss) {expected}");
        }
    }

    [Fact]
    public void Perplexity_through_a_peft_model_equals_exp_of_its_loss_and_differs_from_the_base()
    {
        using var pm = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny")), Fixtures.Adapter("opt-lora"));
        var scorer = new CausalLMScorer(pm, AutoTokenizer.FromPretrained(Fixtures.Model("opt-tiny")));
        var ids = scorer.TokenIds(Texts[4], true, null);
        double ppl = Math.Exp(-scorer.TokenLogProbabilities([Texts[4]], true, null, 1)[0].Average());
        double expected = LossPerplexity(pm, ids);
        Assert.True(Math.Abs(ppl - expected) <= 1e-5 * expected, $"opt-lora: perplexity {ppl} vs exp(loss) {expected}");
        double basePpl;
        using (pm.DisableAdapter())
        {
            basePpl = Math.Exp(-scorer.TokenLogProbabilities([Texts[4]], true, null, 1)[0].Average());
            double baseExpected = LossPerplexity(pm, ids);
            Assert.True(Math.Abs(basePpl - baseExpected) <= 1e-5 * baseExpected, $"opt-tiny (adapter disabled): {basePpl} vs {baseExpected}");
        }
        Assert.NotEqual(basePpl, ppl);
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Batching_and_padding_do_not_change_the_values(string name)
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name));
        var scorer = new CausalLMScorer(model, AutoTokenizer.FromPretrained(Fixtures.Model(name)));
        bool bos = HasBos(name);
        var one = scorer.TokenLogProbabilities(Texts, bos, null, 1);
        var three = scorer.TokenLogProbabilities(Texts, bos, null, 3);
        var all = scorer.TokenLogProbabilities(Texts, bos, null, 16);
        Assert.Equal(Texts.Length, one.Count);
        for (int i = 0; i < Texts.Length; i++)
        {
            Assert.Equal(scorer.TokenIds(Texts[i], bos, null).Count - 1, one[i].Count);
            Assert.Equal(one[i].Count, three[i].Count);
            Assert.Equal(one[i].Count, all[i].Count);
            for (int j = 0; j < one[i].Count; j++)
            {
                Assert.True(Math.Abs(one[i][j] - three[i][j]) <= 1e-5, $"{name} text {i} token {j}: batch 1 {one[i][j]} vs batch 3 {three[i][j]}");
                Assert.True(Math.Abs(one[i][j] - all[i][j]) <= 1e-5, $"{name} text {i} token {j}: batch 1 {one[i][j]} vs batch 5 {all[i][j]}");
            }
        }
    }

    [Theory]
    [InlineData("gpt2-tiny", true)]
    [InlineData("llama-tiny", true)]
    [InlineData("qwen2-tiny", false)]
    public void Max_length_truncates_including_the_bos_token(string name, bool bos)
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name));
        var scorer = new CausalLMScorer(model, AutoTokenizer.FromPretrained(Fixtures.Model(name)));
        var ids = scorer.TokenIds(Texts[4], bos, 6);
        Assert.Equal(6, ids.Count);
        Assert.Equal(scorer.TokenIds(Texts[4], bos, null).Take(6), ids);
        var full = scorer.TokenLogProbabilities([Texts[4]], bos, null, 1)[0];
        var cut = scorer.TokenLogProbabilities([Texts[4]], bos, 6, 1)[0];
        Assert.Equal(5, cut.Count);
        for (int j = 0; j < cut.Count; j++) Assert.True(Math.Abs(full[j] - cut[j]) <= 1e-5, $"{name} token {j}: {full[j]} vs {cut[j]}");
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Perplexity_metric_runs_end_to_end_on_the_scorer(string name)
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name));
        var scorer = new CausalLMScorer(model, AutoTokenizer.FromPretrained(Fixtures.Model(name)));
        bool bos = HasBos(name);
        var texts = Texts.Where(t => t != "a").ToArray();
        var result = Metrics.Load("perplexity").Compute(texts, Array.Empty<string>(), new Dictionary<string, object>
        {
            ["model"] = scorer, ["batch_size"] = 2, ["add_start_token"] = bos,
        });
        var ppls = result.GetVector("perplexities");
        Assert.Equal(texts.Length, ppls.Count);
        for (int i = 0; i < texts.Length; i++)
        {
            double expected = LossPerplexity(model, scorer.TokenIds(texts[i], bos, null));
            Assert.True(Math.Abs(ppls[i] - expected) <= 1e-5 * expected, $"{name} text {i}: perplexity {ppls[i]} vs exp(loss) {expected}");
        }
        Assert.Equal(ppls.Average(), result["mean_perplexity"], 12);
    }

    [Fact]
    public void Bad_input_fails_with_clear_messages()
    {
        using var qwen = AutoModelForCausalLM.FromPretrained(Fixtures.Model("qwen2-tiny"));
        var scorer = new CausalLMScorer(qwen, AutoTokenizer.FromPretrained(Fixtures.Model("qwen2-tiny")));
        var noBos = Assert.Throws<InvalidOperationException>(() => scorer.TokenLogProbabilities(["hello"], true, null, 1));
        Assert.Contains("BOS", noBos.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => scorer.TokenLogProbabilities(["hello"], false, null, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => scorer.TokenLogProbabilities(["hello"], false, 0, 1));
        // A one-token text without a start token scores nothing; the metric then fails as HF does.
        var empty = scorer.TokenLogProbabilities(["a"], false, null, 1);
        Assert.Empty(Assert.Single(empty));
        var e = Assert.Throws<ArgumentException>(() => Metrics.Load("perplexity").Compute(new[] { "a" }, Array.Empty<string>(),
            new Dictionary<string, object> { ["model"] = scorer, ["add_start_token"] = false }));
        Assert.Contains("at least two tokens", e.Message);
    }
}

/// <summary>Scoring releases every tensor it creates.</summary>
[Collection(LeakTestCollection.Name)]
public sealed class CausalLMScorerLeakTests
{
    [Fact]
    public void Scoring_does_not_leak_tensors()
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny"));
        var scorer = new CausalLMScorer(model, AutoTokenizer.FromPretrained(Fixtures.Model("opt-tiny")));
        string[] texts = ["Hello world", "The quick brown fox jumps over the lazy dog.", "a b c"];
        LeakCheck.AssertNoGrowth(() => scorer.TokenLogProbabilities(texts, true, null, 2), 30, what: "CausalLMScorer");
    }
}
