using Peft.Evaluate.Text;

namespace Peft.Evaluate.Tests.Text;

/// <summary>Vectors from sacrebleu's test/test_chrf.py (github.com/mjpost/sacrebleu) and HF evaluate's metrics/chrf/chrf.py docstring.</summary>
public class ChrFSuiteTests
{
    private static List<IReadOnlyList<string>> One(string[] refs) => refs.Select(r => (IReadOnlyList<string>)new[] { r }).ToList();

    [Theory] // test_chrf.py test_cases: corpus_chrf(..., char_order=6, word_order=0, beta=3, eps_smoothing=True)
    [InlineData(new[] { "abcdefg" }, new[] { "hijklmnop" }, 0.0)]
    [InlineData(new[] { "a" }, new[] { "b" }, 0.0)]
    [InlineData(new[] { "" }, new[] { "b" }, 0.0)]
    [InlineData(new[] { "" }, new[] { "ref" }, 0.0)]
    [InlineData(new[] { "" }, new[] { "reference" }, 0.0)]
    [InlineData(new[] { "aa" }, new[] { "ab" }, 8.3333)]
    [InlineData(new[] { "a", "b" }, new[] { "a", "c" }, 8.3333)]
    [InlineData(new[] { "a" }, new[] { "a" }, 16.6667)]
    [InlineData(new[] { "a b c" }, new[] { "a b c" }, 50.0)]
    [InlineData(new[] { "a b c" }, new[] { "abc" }, 50.0)]
    [InlineData(new[] { " risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists ." },
        new[] { "risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists ." }, 63.361730)]
    [InlineData(new[] { " Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. " },
        new[] { "Das Verh\u00e4ltnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich." }, 64.1302698)]
    [InlineData(new[] { "Niemand hat die Absicht, eine Mauer zu errichten" }, new[] { "Niemand hat die Absicht, eine Mauer zu errichten" }, 100.0)]
    public void Eps_smoothing(string[] hyps, string[] refs, double expected)
    {
        var s = ChrF.CorpusScore(hyps, One(refs), new ChrFOptions { Beta = 3, EpsSmoothing = true });
        Assert.True(Math.Abs(s - expected) < 1e-4, $"got {s:R}");
    }

    [Theory] // test_chrf.py test_cases_effective_order (beta=3, eps_smoothing=False)
    [InlineData(new[] { "a" }, new[] { "a" }, 100.0)]
    [InlineData(new[] { "" }, new[] { "reference" }, 0.0)]
    [InlineData(new[] { "a b c" }, new[] { "a b c" }, 100.0)]
    [InlineData(new[] { "a b c" }, new[] { "abc" }, 100.0)]
    [InlineData(new[] { "" }, new[] { "c" }, 0.0)]
    [InlineData(new[] { "a", "b" }, new[] { "a", "c" }, 50.0)]
    [InlineData(new[] { "aa" }, new[] { "ab" }, 25.0)]
    public void Effective_order(string[] hyps, string[] refs, double expected)
    {
        var s = ChrF.CorpusScore(hyps, One(refs), new ChrFOptions { Beta = 3 });
        Assert.True(Math.Abs(s - expected) < 1e-4, $"got {s:R}");
    }

    [Theory] // test_chrf.py test_cases_keep_whitespace (beta=3, remove_whitespace=False)
    [InlineData("Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich.",
        "Das Verh\u00e4ltnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich.", 67.3481606)]
    [InlineData("risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists .",
        "risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists .", 65.2414427)]
    public void Keep_whitespace(string hyp, string reference, double expected)
    {
        var s = ChrF.CorpusScore([hyp], One([reference]), new ChrFOptions { Beta = 3, Whitespace = true });
        Assert.True(Math.Abs(s - expected) < 1e-4, $"got {s:R}");
    }

    [Theory] // test_chrf.py test_sentence_level_chrf: sentence_chrf(h, refs, eps_smoothing=True)
    [InlineData("Co n\u00e1s nejv\u00edc tr\u00e1p\u00ed, proto\u017ee l\u00e9ka\u0159i si vyb\u00edraj\u00ed, kdo bude \u017e\u00edt a kdo zem\u0159e.",
        "Nejv\u00edce smutn\u00ed jsme z toho, \u017ee mus\u00edme rozhodovat o tom, kdo bude \u017e\u00edt a kdo zem\u0159e.", 39.14078509)]
    [InlineData("Nebo prost\u011b nemaj\u00ed vybaven\u00ed, kter\u00e9 by jim pomohlo, uvedli l\u00e9ka\u0159i.",
        "A n\u011bkdy nem\u00e1me ani pot\u0159ebn\u00fd materi\u00e1l, abychom jim pomohli, popsali l\u00e9ka\u0159i.", 31.22557079)]
    [InlineData("Lapali po dechu, jejich \u017eivoty skon\u010dily d\u0159\u00edv, ne\u017e skute\u010dn\u011b za\u010daly.",
        "Lapali po dechu a pak jejich \u017eivot skon\u010dil - d\u0159\u00edv, ne\u017e skute\u010dn\u011b mohl za\u010d\u00edt, p\u0159ipomn\u011bli.", 57.15704367)]
    public void Sentence_level(string hyp, string reference, double expected)
    {
        var s = ChrF.SentenceScore(hyp, [reference], new ChrFOptions { EpsSmoothing = true });
        Assert.True(Math.Abs(s - expected) < 1e-4, $"got {s:R}");
    }

    private static readonly string[] HfPredictions =
        ["The relationship between cats and dogs is not exactly friendly.", "a good bookshop is just a genteel black hole that knows how to read."];
    private static readonly string[][] HfReferences =
        [["The relationship between dogs and cats is not exactly friendly."], ["A good bookshop is just a genteel Black Hole that knows how to read."]];

    [Theory] // HF evaluate metrics/chrf/chrf.py docstring examples 1-3
    [InlineData(0, false, 84.64214891738334)]
    [InlineData(2, false, 82.87263732906315)]
    [InlineData(2, true, 92.12853119829202)]
    public void Hf_docstring_examples(int wordOrder, bool lowercase, double expected)
    {
        var r = Metrics.Load("chrf").Compute(HfPredictions, HfReferences,
            new Dictionary<string, object> { ["word_order"] = wordOrder, ["lowercase"] = lowercase });
        Assert.Equal(expected, r["score"], 1e-9);
        Assert.Equal(6, r["char_order"]);
        Assert.Equal(wordOrder, r["word_order"]);
        Assert.Equal(2, r["beta"]);
    }
}
