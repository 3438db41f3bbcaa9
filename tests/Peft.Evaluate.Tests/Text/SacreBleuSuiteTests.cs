using Peft.Evaluate.Text;

namespace Peft.Evaluate.Tests.Text;

/// <summary>Vectors from sacrebleu's own test suite (github.com/mjpost/sacrebleu, test/test_bleu.py, test/test_sentence_bleu.py, README).</summary>
public class SacreBleuSuiteTests
{
    // test/test_bleu.py: _refs / _hyps (the README example), given there as two reference streams.
    private static readonly string[] Hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."];
    private static readonly string[][] Streams =
    [
        ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
        ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
    ];

    private static List<IReadOnlyList<string>> PerHyp(string[][] streams, int n) =>
        Enumerable.Range(0, n).Select(i => (IReadOnlyList<string>)streams.Select(s => s[i]).ToList()).ToList();

    // raw_corpus_bleu(h, r, v) = corpus_bleu(smooth_method='floor', smooth_value=v, tokenize='none', use_effective_order=True)
    private static SacreBleuOptions Raw(double? floor) => new() { SmoothMethod = "floor", SmoothValue = floor, Tokenize = "none", EffectiveOrder = true };

    [Theory] // test_bleu.py test_corpus_bleu_cases
    [InlineData(null, null, 48.530827)]
    [InlineData("none", null, 49.1919566)]
    [InlineData("13a", null, 48.530827)]
    [InlineData("intl", null, 43.91623493)]
    [InlineData(null, "none", 48.530827)]
    public void Corpus_bleu_readme_example(string? tokenize, string? smooth, double expected)
    {
        var kw = new Dictionary<string, object>();
        if (tokenize is not null) kw["tokenize"] = tokenize;
        if (smooth is not null) kw["smooth_method"] = smooth;
        var r = Metrics.Load("sacrebleu").Compute(Hyps, PerHyp(Streams, 3), kw);
        Assert.True(Math.Abs(r["score"] - expected) < 1e-6, $"got {r["score"]:R}");
    }

    [Fact] // test_bleu.py: empty hypotheses are kept and score 0; README: 82.4/50.0/45.5/37.5 BP = 0.943 hyp_len 17 ref_len 18
    public void Empty_hypotheses_and_readme_statistics()
    {
        Assert.Equal(0.0, Metrics.Load("sacrebleu").Compute(["", "", ""], PerHyp(Streams, 3))["score"]);
        var r = Metrics.Load("sacrebleu").Compute(Hyps, PerHyp(Streams, 3));
        Assert.Equal([82.4, 50.0, 45.5, 37.5], r.GetVector("precisions").Select(p => Math.Round(p, 1)));
        Assert.Equal(0.943, Math.Round(r["bp"], 3));
        Assert.Equal(17, r["sys_len"]);
        Assert.Equal(18, r["ref_len"]);
    }

    [Theory] // test_bleu.py test_bleu_max_order
    [InlineData(1, "77.65")]
    [InlineData(2, "60.50")]
    [InlineData(3, "53.93")]
    [InlineData(4, "48.53")]
    [InlineData(5, "46.14")]
    [InlineData(6, "43.28")]
    public void Max_ngram_order(int order, string expected)
    {
        var s = SacreBleu.CorpusScore(Hyps, PerHyp(Streams, 3), new SacreBleuOptions { MaxNgramOrder = order });
        Assert.Equal(expected, s.Score.ToString("F2", System.Globalization.CultureInfo.InvariantCulture));
    }

    [Theory] // test_bleu.py test_raw_bleu_cases and test_case_effective_order (scores / 100)
    [InlineData(new[] { "this is a test", "another test" }, new[] { "ref1", "ref2" }, 0.0)]
    [InlineData(new[] { "this is a test" }, new[] { "this is a test" }, 1.0)]
    [InlineData(new[] { "this is a fest" }, new[] { "this is a test" }, 0.223606797749979)]
    [InlineData(new[] { "test" }, new[] { "a test" }, 0.3678794411714425)]
    [InlineData(new[] { "a test" }, new[] { "a test" }, 1.0)]
    [InlineData(new[] { "a little test" }, new[] { "a test" }, 0.03218297948685433)]
    public void Raw_corpus_bleu(string[] hyps, string[] refStream, double expected)
    {
        var s = SacreBleu.CorpusScore(hyps, PerHyp([refStream], hyps.Length), Raw(0.01));
        Assert.True(Math.Abs(s.Score / 100 - expected) < 1e-8, $"got {s.Score / 100:R}");
    }

    [Fact] // test_bleu.py test_case_statistics and test_case_offset
    public void Statistics_and_floor_offset()
    {
        string[] h = ["am I am a character sequence"];
        var r = PerHyp([["I am a symbol string sequence a a"]], 1);
        var s = SacreBleu.CorpusScore(h, r, Raw(0.01));
        Assert.Equal([4.0, 2, 1, 0], s.Counts);
        Assert.Equal([6.0, 5, 4, 3], s.Totals);
        Assert.True(Math.Abs(SacreBleu.CorpusScore(h, r, Raw(0.0)).Score / 100) < 1e-8);
        Assert.True(Math.Abs(SacreBleu.CorpusScore(h, r, Raw(null)).Score / 100 - 0.1555722182) < 1e-8);
    }

    [Fact] // test_bleu.py test_case_scoring: compute_bleu([9,7,5,3], [10,8,6,4], 11, 11) with smooth 'none'
    public void Scoring_from_statistics()
    {
        var s = SacreBleu.ComputeBleu([9, 7, 5, 3], [10, 8, 6, 4], 11, 11, new SacreBleuOptions { SmoothMethod = "none" });
        Assert.True(Math.Abs(s.Score / 100 - 0.8375922397) < 1e-8);
    }

    [Theory] // test_bleu.py test_case_degenerate_stats (floor smoothing with the given offset) -> exactly 0.0
    [InlineData(new double[] { 0, 0, 0, 0 }, new double[] { 4, 4, 2, 1 }, 0, 1, 0.0)]
    [InlineData(new double[] { 0, 0, 0, 0 }, new double[] { 10, 11, 12, 0 }, 14, 10, 0.0)]
    [InlineData(new double[] { 0, 0, 0, 0 }, new double[] { 0, 0, 0, 0 }, 0, 0, 0.0)]
    [InlineData(new double[] { 6, 5, 4, 0 }, new double[] { 6, 5, 4, 3 }, 6, 6, 0.0)]
    [InlineData(new double[] { 0, 0, 0, 0 }, new double[] { 0, 0, 0, 0 }, 0, 0, 0.1)]
    [InlineData(new double[] { 0, 0, 0, 0 }, new double[] { 0, 0, 0, 0 }, 1, 5, 0.01)]
    public void Degenerate_statistics(double[] correct, double[] total, long sys, long @ref, double offset)
    {
        var s = SacreBleu.ComputeBleu(correct, total, sys, @ref, new SacreBleuOptions { SmoothMethod = "floor", SmoothValue = offset });
        Assert.Equal(0.0, s.Score);
    }

    // test_sentence_bleu.py: REF uses U+0163 (t with cedilla) where SYS uses U+021B (t with comma): no normalisation.
    private const string Ref = "produc\u0163ia de zah\u0103r brut se exprim\u0103 \u00een zah\u0103r alb;";
    private const string Sys = "Produc\u021bia de zah\u0103r prim\u0103 va fi exprimat\u0103 \u00een ceea ce prive\u0219te zah\u0103rul alb;";

    [Theory] // test_sentence_bleu.py test_cases (EPSILON 1e-3)
    [InlineData("exp", null, false, "13a", 8.493)]
    [InlineData("none", null, false, "13a", 0.0)]
    [InlineData("floor", null, false, "13a", 4.51688)]
    [InlineData("floor", 0.1, false, "13a", 4.51688)]
    [InlineData("floor", 0.5, false, "13a", 10.10)]
    [InlineData("add-k", null, false, "13a", 14.882)]
    [InlineData("add-k", 1.0, false, "13a", 14.882)]
    [InlineData("add-k", 2.0, false, "13a", 21.389)]
    [InlineData("exp", null, false, "none", 7.347)]
    [InlineData("exp", null, false, "intl", 8.493)]
    [InlineData("exp", null, false, "char", 40.8759)]
    [InlineData("exp", null, true, "char", 42.0267)]
    public void Sentence_bleu(string smooth, double? value, bool lowercase, string tok, double expected)
    {
        var o = new SacreBleuOptions { SmoothMethod = smooth, SmoothValue = value, Lowercase = lowercase, Tokenize = tok, EffectiveOrder = true };
        var s = SacreBleu.SentenceScore(Sys, [Ref], o);
        Assert.True(Math.Abs(s.Score - expected) < 1e-3, $"got {s.Score:R}");
    }

    [Theory] // test_sentence_bleu.py test_cases_zero_bleu
    [InlineData("exp", null)]
    [InlineData("none", null)]
    [InlineData("floor", null)]
    [InlineData("floor", 0.1)]
    [InlineData("add-k", null)]
    [InlineData("add-k", 1.0)]
    public void Sentence_bleu_zero(string smooth, double? value)
    {
        var o = new SacreBleuOptions { SmoothMethod = smooth, SmoothValue = value, EffectiveOrder = true };
        Assert.Equal(0.0, SacreBleu.SentenceScore("this is a cat", ["okay thanks"], o).Score, 1e-3);
    }

    [Fact] // HF evaluate metrics/sacrebleu/sacrebleu.py docstring, examples 1 and 2
    public void Hf_sacrebleu_docstring_examples()
    {
        var m = Metrics.Load("sacrebleu");
        var r1 = m.Compute(["hello there general kenobi", "foo bar foobar"],
            [["hello there general kenobi", "hello there !"], ["foo bar foobar", "foo bar foobar"]]);
        Assert.Equal(new[] { "score", "bp", "sys_len", "ref_len" }, r1.Keys);
        Assert.Equal(new[] { "counts", "totals", "precisions" }, r1.Vectors.Keys);
        Assert.Equal(100.0, Math.Round(r1["score"], 1));
        var r2 = m.Compute(["hello there general kenobi", "on our way to ankh morpork"],
            [["hello there general kenobi", "hello there !"], ["goodbye ankh morpork", "ankh morpork"]]);
        Assert.Equal(39.8, Math.Round(r2["score"], 1));
    }

    [Fact] // HF sacrebleu: "Sacrebleu requires the same number of references for each prediction"
    public void Unequal_reference_counts_are_rejected()
    {
        var e = Assert.Throws<ArgumentException>(() => Metrics.Load("sacrebleu").Compute(["a", "b"], [["a"], ["b", "c"]]));
        Assert.Contains("same number of references", e.Message);
    }
}
