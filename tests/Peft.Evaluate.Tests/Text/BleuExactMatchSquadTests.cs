namespace Peft.Evaluate.Tests.Text;

/// <summary>HF evaluate's <c>bleu</c>, <c>exact_match</c> and <c>squad</c>: documentation examples (cited) and hand-derived cases.</summary>
public class BleuExactMatchSquadTests
{
    private static readonly string[] Predictions = ["hello there general kenobi", "foo bar foobar"];

    [Fact] // HF evaluate metrics/bleu/README.md: "Example where each prediction has 1 reference"
    public void Bleu_readme_one_reference()
    {
        var r = Metrics.Load("bleu").Compute(Predictions, [["hello there general kenobi"], ["foo bar foobar"]]);
        Assert.Equal(1.0, r["bleu"]);
        Assert.Equal([1.0, 1.0, 1.0, 1.0], r.GetVector("precisions"));
        Assert.Equal(1.0, r["brevity_penalty"]);
        Assert.Equal(1.0, r["length_ratio"]);
        Assert.Equal(7, r["translation_length"]);
        Assert.Equal(7, r["reference_length"]);
    }

    [Fact] // HF evaluate metrics/bleu/README.md and bleu.py docstring: "the first prediction has 2 references" (shortest reference counts)
    public void Bleu_readme_two_references()
    {
        var r = Metrics.Load("bleu").Compute(Predictions, [["hello there general kenobi", "hello there!"], ["foo bar foobar"]]);
        Assert.Equal(1.0, r["bleu"]);
        Assert.Equal(1.1666666666666667, r["length_ratio"]);
        Assert.Equal(7, r["translation_length"]);
        Assert.Equal(6, r["reference_length"]);
    }

    [Fact]
    public void Bleu_hand_derived_max_order_and_smoothing()
    {
        // "the cat sat" vs "the cat sat on the mat": matches 3/3, 2/2, 1/1; no 4-gram is possible, so with max_order 4
        // precision_4 = 0 and BLEU = 0. With max_order 3: geo mean 1, ratio 3/6 = 0.5, BP = exp(1 - 1/0.5) = e^-1.
        var bleu = Metrics.Load("bleu");
        Assert.Equal(0.0, bleu.Compute(["the cat sat"], ["the cat sat on the mat"])["bleu"]);
        var r3 = bleu.Compute(["the cat sat"], ["the cat sat on the mat"], new Dictionary<string, object> { ["max_order"] = 3 });
        Assert.Equal(Math.Exp(-1), r3["bleu"], 1e-15);
        Assert.Equal(0.5, r3["length_ratio"]);
        // smooth=True adds one to matches and possible matches of every order: 4-gram (0+1)/(0+1) = 1 -> BLEU = e^-1 again.
        Assert.Equal(Math.Exp(-1), bleu.Compute(["the cat sat"], ["the cat sat on the mat"], new Dictionary<string, object> { ["smooth"] = true })["bleu"], 1e-15);
        // "a a a a" vs "a b", max_order 2, smooth: unigram clip min(4, 1) = 1 -> (1+1)/(4+1) = 0.4; bigram "a a" x3 unmatched
        // -> (0+1)/(3+1) = 0.25; BLEU = sqrt(0.4 * 0.25) = sqrt(0.1); ratio 2 > 1 -> BP 1.
        var s = bleu.Compute(["a a a a"], ["a b"], new Dictionary<string, object> { ["max_order"] = 2, ["smooth"] = true });
        Assert.Equal(Math.Sqrt(0.1), s["bleu"], 1e-15);
        Assert.Equal([0.4, 0.25], s.GetVector("precisions"));
    }

    private static readonly string[] EmRefs = ["the cat", "theater", "YELLING", "agent007"];
    private static readonly string[] EmPreds = ["cat?", "theater", "yelling", "agent"];

    [Fact] // HF evaluate metrics/exact_match/exact_match.py docstring examples
    public void Exact_match_docstring_examples()
    {
        var em = Metrics.Load("exact_match");
        Assert.Equal(0.25, Math.Round(em.Compute(EmPreds, EmRefs)["exact_match"], 2));
        Assert.Equal(0.5, Math.Round(em.Compute(EmPreds, EmRefs, new Dictionary<string, object>
            { ["regexes_to_ignore"] = new[] { "the ", "yell" }, ["ignore_case"] = true, ["ignore_punctuation"] = true })["exact_match"], 2));
        Assert.Equal(0.75, Math.Round(em.Compute(EmPreds, EmRefs, new Dictionary<string, object>
            { ["regexes_to_ignore"] = new[] { "the ", "yell", "YELL" }, ["ignore_case"] = true, ["ignore_punctuation"] = true })["exact_match"], 2));
        Assert.Equal(1.0, Math.Round(em.Compute(EmPreds, EmRefs, new Dictionary<string, object>
            { ["regexes_to_ignore"] = new[] { "the ", "yell", "YELL" }, ["ignore_case"] = true, ["ignore_punctuation"] = true, ["ignore_numbers"] = true })["exact_match"], 2));
        Assert.Equal(0.33, Math.Round(em.Compute(
            ["The cat sat on the mat?", "Theaters are great.", "It's like comparing apples and oranges."],
            ["The cat sat on the mat.", "Theaters are great.", "It's like comparing oranges and apples."])["exact_match"], 2));
    }

    [Fact]
    public void Exact_match_compares_code_points_without_normalisation()
    {
        // "café" precomposed (U+00E9) vs decomposed (e + U+0301): different strings for Python's ==, so 0 of 1.
        Assert.Equal(0.0, Metrics.Load("exact_match").Compute(["caf\u00e9"], ["cafe\u0301"])["exact_match"]);
        Assert.True(double.IsNaN(Metrics.Load("exact_match").Compute(Array.Empty<string>(), Array.Empty<string>())["exact_match"])); // np.mean([]) is nan
    }

    [Fact] // HF evaluate metrics/squad/squad.py docstring
    public void Squad_docstring_example()
    {
        var r = Metrics.Load("squad").Compute(["1976"], [["1976"]]);
        Assert.Equal(100.0, r["exact_match"]);
        Assert.Equal(100.0, r["f1"]);
    }

    [Fact]
    public void Squad_hand_derived()
    {
        // Q1: "The Eiffel Tower!" normalises to "eiffel tower" (lowercase, punctuation and article removed) = gold 1 -> EM 1, F1 1.
        // Q2: "in the city of Paris" -> tokens [in, city, of, paris]; gold "Paris" -> [paris]; overlap 1: P = 1/4, R = 1,
        //     F1 = 2 * 0.25 / 1.25 = 0.4; against "the capital" -> [capital]: 0. Max over golds: EM 0, F1 0.4.
        // Totals in percent: EM = 100 * 1/2 = 50, F1 = 100 * 1.4/2 = 70.
        var r = Metrics.Load("squad").Compute(["The Eiffel Tower!", "in the city of Paris"], [["eiffel tower", "Paris"], ["Paris", "the capital"]]);
        Assert.Equal(50.0, r["exact_match"]);
        Assert.Equal(70.0, r["f1"], 1e-12);
    }
}
