using System.Text.Json;
using Peft.Testing;

namespace Peft.Evaluate.Tests;

/// <summary>Acceptance: <c>shared/fixtures/hf/metrics.reference.json</c> (scikit-learn 1.9.1, sacrebleu 2.6.0).</summary>
public class FixtureParityTests
{
    private static readonly JsonElement Root = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.Hf, "metrics.reference.json"))).RootElement;

    public static IEnumerable<object[]> ClassificationCases() =>
        Enumerable.Range(0, Root.GetProperty("classification").GetArrayLength()).Select(i => new object[] { i });

    [Theory]
    [MemberData(nameof(ClassificationCases))]
    public void Classification_matches_sklearn_within_1e9(int index)
    {
        var c = Root.GetProperty("classification")[index];
        var refs = c.GetProperty("references").EnumerateArray().Select(x => x.GetInt32()).ToList();
        var preds = c.GetProperty("predictions").EnumerateArray().Select(x => x.GetInt32()).ToList();
        int compared = 0;
        foreach (var prop in c.EnumerateObject())
        {
            if (prop.Name is "references" or "predictions") continue;
            double expected = prop.Value.GetDouble();
            double actual;
            if (prop.Name is "accuracy" or "matthews_correlation")
                actual = Metrics.Load(prop.Name).Compute(preds, refs)[prop.Name];
            else
            {
                var cut = prop.Name.LastIndexOf('_');
                string metric = prop.Name[..cut], average = prop.Name[(cut + 1)..];
                actual = Metrics.Load(metric).Compute(preds, refs, new Dictionary<string, object> { ["average"] = average })[metric];
            }
            Assert.True(Math.Abs(expected - actual) <= 1e-9, $"case {index} {prop.Name}: expected {expected:R}, got {actual:R}");
            compared++;
        }
        Assert.True(compared >= 10, $"case {index}: only {compared} values compared");
    }

    private static (List<string> Hyps, List<IReadOnlyList<string>> RefsPerHyp, List<IReadOnlyList<string>> OneRef) Sacre()
    {
        var s = Root.GetProperty("sacrebleu");
        var hyps = s.GetProperty("hypotheses").EnumerateArray().Select(x => x.GetString()!).ToList();
        // sacrebleu's layout: one stream per reference; HF/our layout: the references of each hypothesis.
        var streams = s.GetProperty("references").EnumerateArray().Select(st => st.EnumerateArray().Select(x => x.GetString()!).ToList()).ToList();
        var perHyp = hyps.Select((_, i) => (IReadOnlyList<string>)streams.Select(st => st[i]).ToList()).ToList();
        var oneRef = hyps.Select((_, i) => (IReadOnlyList<string>)new List<string> { streams[0][i] }).ToList();
        return (hyps, perHyp, oneRef);
    }

    private static double Expected(string key) => Root.GetProperty("sacrebleu").GetProperty(key).GetDouble();

    [Fact]
    public void Corpus_bleu_13a_two_references()
    {
        var (h, r, _) = Sacre();
        var score = Metrics.Load("sacrebleu").Compute(h, r)["score"];
        Assert.Equal(Expected("corpus_bleu_13a"), score, 1e-4);
    }

    [Fact]
    public void Corpus_bleu_13a_one_reference()
    {
        var (h, _, one) = Sacre();
        Assert.Equal(Expected("corpus_bleu_13a_one_ref"), Metrics.Load("sacrebleu").Compute(h, one)["score"], 1e-4);
    }

    [Fact]
    public void Corpus_bleu_zh_two_references()
    {
        var (h, r, _) = Sacre();
        var score = Metrics.Load("sacrebleu").Compute(h, r, new Dictionary<string, object> { ["tokenize"] = "zh" })["score"];
        Assert.Equal(Expected("corpus_bleu_zh"), score, 1e-4);
    }

    [Fact]
    public void Sentence_bleu_first_hypothesis()
    {
        var (h, r, _) = Sacre();
        Assert.Equal(Expected("sentence_bleu_first"), Peft.Evaluate.Text.SacreBleu.SentenceScore(h[0], r[0]).Score, 1e-4);
    }

    [Fact]
    public void Corpus_chrf_two_references()
    {
        var (h, r, _) = Sacre();
        Assert.Equal(Expected("corpus_chrf"), Metrics.Load("chrf").Compute(h, r)["score"], 1e-4);
    }
}
