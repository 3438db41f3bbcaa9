namespace Peft.Evaluate.Tests;

/// <summary>The HF-shaped API: Load, Compute with kwargs, AddBatch/Add + Compute(), Combine, errors, perplexity over the scorer interface.</summary>
public class MetricApiTests
{
    [Fact] // DESIGN.md example
    public void Design_examples_compile_and_run()
    {
        List<int> predictions = [0, 1, 1, 2], references = [0, 1, 2, 2];
        IReadOnlyDictionary<string, double> r = Metrics.Load("accuracy").Compute(predictions, references);
        Assert.Equal(0.75, r["accuracy"]);
        // macro F1 by hand: class 0 F 1; class 1 P 1/2 R 1 -> 2/3; class 2 P 1 R 1/2 -> 2/3; mean (1 + 4/3) / 3 = 7/9.
        var f1 = Metrics.Load("f1").Compute(predictions, references, new Dictionary<string, object> { ["average"] = "macro" });
        Assert.Equal(7.0 / 9, f1["f1"], 1e-15);
        List<string> hypotheses = ["The cat is on the mat."];
        List<List<string>> referencesPerHypothesis = [["The cat is on the mat."]];
        var bleu = Metrics.Load("sacrebleu").Compute(hypotheses, referencesPerHypothesis);
        Assert.Equal(100.0, bleu["score"], 1e-9);
    }

    [Fact]
    public void Add_batch_then_compute_equals_one_shot_and_clears_the_buffer()
    {
        var m = Metrics.Load("f1");
        m.AddBatch([0, 1, 1], new[] { 0, 1, 0 });
        m.AddBatch([1, 0], new[] { 1, 1 });
        m.Add(0, 0);
        Assert.Equal(6, m.BufferedCount);
        var incremental = m.Compute(new Dictionary<string, object> { ["average"] = "weighted" });
        var oneShot = Metrics.Load("f1").Compute([0, 1, 1, 1, 0, 0], new[] { 0, 1, 0, 1, 1, 0 }, new Dictionary<string, object> { ["average"] = "weighted" });
        Assert.Equal(oneShot["f1"], incremental["f1"]);
        Assert.Equal(0, m.BufferedCount);

        var s = Metrics.Load("sacrebleu");
        s.AddBatch(["The cat is on the mat."], [["The cat sat on the mat."]]);
        s.Add("There is a dog in the garden", ["A dog is in the garden."]);
        Assert.Equal(Metrics.Load("sacrebleu").Compute(["The cat is on the mat.", "There is a dog in the garden"],
            [["The cat sat on the mat."], ["A dog is in the garden."]])["score"], s.Compute()["score"]);
    }

    [Fact] // HF evaluate src/evaluate/module.py CombinedEvaluations.compute docstring: {'accuracy': 0.5, 'f1': 0.6666666666666666}
    public void Combine_matches_hf_docstring_and_prefixes_duplicate_keys()
    {
        var r = Metrics.Combine("accuracy", "f1").Compute([0, 1], new[] { 1, 1 });
        Assert.Equal(0.5, r["accuracy"]);
        Assert.Equal(0.6666666666666666, r["f1"], 1e-15);
        // sacrebleu and chrf both return "score" -> prefixed with the metric name (HF _merge_results).
        var t = Metrics.Combine("sacrebleu", "chrf").Compute(["a b c d"], new[] { "a b c d" });
        Assert.Equal(100.0, t["sacrebleu_score"], 1e-9);
        Assert.Equal(100.0, t["chrf_score"], 1e-9);
        Assert.False(t.ContainsKey("score"));
        var forced = Metrics.Combine(["accuracy"], forcePrefix: true).Compute([1], new[] { 1 });
        Assert.Equal(1.0, forced["accuracy_accuracy"]);
        // kwargs go to the metrics that accept them
        var k = Metrics.Combine("accuracy", "f1").Compute([0, 1, 2], new[] { 0, 1, 1 }, new Dictionary<string, object> { ["average"] = "micro" });
        Assert.Equal(2.0 / 3, k["f1"], 1e-15);
    }

    [Fact]
    public void Unequal_lengths_name_both_lengths()
    {
        var e = Assert.Throws<ArgumentException>(() => Metrics.Load("accuracy").Compute([1, 2, 3], new[] { 1, 2 }));
        Assert.Contains("3 predictions and 2 references", e.Message);
        var t = Assert.Throws<ArgumentException>(() => Metrics.Load("rouge").Compute(["a"], new[] { "a", "b" }));
        Assert.Contains("1 predictions and 2 references", t.Message);
        var b = Assert.Throws<ArgumentException>(() => Metrics.Load("f1").AddBatch([1], new[] { 1, 0 }));
        Assert.Contains("1 predictions and 2 references", b.Message);
    }

    [Fact]
    public void Unknown_metric_and_non_scalar_access_say_what_exists()
    {
        var e = Assert.Throws<ArgumentException>(() => Metrics.Load("meteor"));
        Assert.Contains("sacrebleu", e.Message);
        var r = Metrics.Load("f1").Compute([0, 1, 2], new[] { 0, 1, 1 }, new Dictionary<string, object> { ["average"] = "none" });
        var k = Assert.Throws<KeyNotFoundException>(() => r["f1"]);
        Assert.Contains("GetVector", k.Message);
        Assert.Equal(3, r.GetVector("f1").Count);
        Assert.Equal("accuracy", Metrics.Load("evaluate-metric/accuracy").Name);
    }

    private sealed class FixedScorer(IReadOnlyList<IReadOnlyList<double>> logProbs) : ICausalLMScorer
    {
        public (bool AddStart, int? MaxLength, int Batch)? LastCall;

        public IReadOnlyList<IReadOnlyList<double>> TokenLogProbabilities(IReadOnlyList<string> texts, bool addStartToken, int? maxLength, int batchSize)
        {
            LastCall = (addStartToken, maxLength, batchSize);
            return logProbs.Take(texts.Count).ToList();
        }
    }

    [Fact]
    public void Perplexity_over_the_scorer_interface()
    {
        // Text 1 token probabilities 1/2 and 1/4: mean NLL = (ln 2 + ln 4) / 2 = 1.5 ln 2 -> ppl = 2^1.5 = 2.828...
        // Text 2 one token with probability 0.1 -> ppl 10. mean_perplexity = plain mean of the two (as HF).
        var scorer = new FixedScorer([[Math.Log(0.5), Math.Log(0.25)], [Math.Log(0.1)]]);
        var r = Metrics.Load("perplexity").Compute(["first text", "second"], Array.Empty<string>(),
            new Dictionary<string, object> { ["model"] = scorer, ["batch_size"] = 2, ["add_start_token"] = false, ["max_length"] = 64 });
        Assert.Equal(Math.Pow(2, 1.5), r.GetVector("perplexities")[0], 1e-12);
        Assert.Equal(10.0, r.GetVector("perplexities")[1], 1e-12);
        Assert.Equal((Math.Pow(2, 1.5) + 10) / 2, r["mean_perplexity"], 1e-12);
        Assert.Equal((false, (int?)64, 2), scorer.LastCall);
        var noModel = Assert.Throws<ArgumentException>(() => Metrics.Load("perplexity").Compute(["x"], Array.Empty<string>(),
            new Dictionary<string, object> { ["model_id"] = "gpt2" }));
        Assert.Contains("ICausalLMScorer", noModel.Message);
        Assert.Throws<ArgumentException>(() => new PerplexityMetric().Compute(["x"], new FixedScorer([[]])));
    }
}
