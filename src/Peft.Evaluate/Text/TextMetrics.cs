using System.Text;
using System.Text.RegularExpressions;

namespace Peft.Evaluate.Text;

/// <summary>Shared input handling of the text metrics: string predictions, one string or a list of strings per reference.</summary>
public abstract class TextMetric : Metric
{
    private protected TextMetric(string name) : base(name) { }

    private protected (List<string> Predictions, List<IReadOnlyList<string>> References) Texts(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references)
    {
        var p = predictions.Select((x, i) => AsText(x, i)).ToList();
        var r = references.Select((x, i) => AsReferences(x, i)).ToList();
        return (p, r);
    }

    /// <summary>HF's sacrebleu/chrf check that every prediction has the same number of references.</summary>
    private protected void RequireSameReferenceCount(List<IReadOnlyList<string>> references, string what)
    {
        if (references.Count == 0) return;
        int k = references[0].Count;
        for (int i = 1; i < references.Count; i++)
            if (references[i].Count != k)
                throw new ArgumentException($"{what} requires the same number of references for each prediction: prediction 0 has {k}, prediction {i} has {references[i].Count}.");
    }
}

/// <summary>
/// HF <c>sacrebleu</c>: sacrebleu 2.x <c>corpus_bleu</c>. Result keys: <c>score</c>, <c>bp</c>, <c>sys_len</c>, <c>ref_len</c>
/// (scalars) and <c>counts</c>, <c>totals</c>, <c>precisions</c> (vectors). Kwargs: <c>smooth_method</c> ("exp"), <c>smooth_value</c>,
/// <c>force</c> (accepted, no effect), <c>lowercase</c>, <c>tokenize</c> ("13a", "intl", "zh", "char", "none"),
/// <c>use_effective_order</c>. Empty input throws, as sacrebleu does.
/// </summary>
public sealed class SacreBleuMetric() : TextMetric("sacrebleu")
{
    /// <inheritdoc/>
    public override IReadOnlyCollection<string> KwargNames { get; } = ["smooth_method", "smooth_value", "force", "lowercase", "tokenize", "use_effective_order"];

    private protected override MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kw)
    {
        var (p, r) = Texts(predictions, references);
        if (p.Count == 0) throw new ArgumentException("sacrebleu: no predictions (sacrebleu fails on an empty corpus as well).");
        RequireSameReferenceCount(r, "Sacrebleu");
        var score = SacreBleu.CorpusScore(p, r, new SacreBleuOptions
        {
            SmoothMethod = kw.GetString("smooth_method", "exp") ?? "exp",
            SmoothValue = kw.GetDouble("smooth_value", null),
            Lowercase = kw.GetBool("lowercase", false),
            Tokenize = kw.GetString("tokenize", null) ?? "13a",
            EffectiveOrder = kw.GetBool("use_effective_order", false),
        });
        return new MetricResult().Set("score", score.Score).SetVector("counts", score.Counts).SetVector("totals", score.Totals)
            .SetVector("precisions", score.Precisions).Set("bp", score.BrevityPenalty).Set("sys_len", score.SysLen).Set("ref_len", score.RefLen);
    }
}

/// <summary>
/// HF <c>chrf</c>: sacrebleu 2.x <c>CHRF.corpus_score</c>. Result keys: <c>score</c>, <c>char_order</c>, <c>word_order</c>, <c>beta</c>.
/// Kwargs: <c>char_order</c> (6), <c>word_order</c> (0; 2 = chrF++), <c>beta</c> (2), <c>lowercase</c>, <c>whitespace</c>, <c>eps_smoothing</c>.
/// </summary>
public sealed class ChrFMetric() : TextMetric("chrf")
{
    /// <inheritdoc/>
    public override IReadOnlyCollection<string> KwargNames { get; } = ["char_order", "word_order", "beta", "lowercase", "whitespace", "eps_smoothing"];

    private protected override MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kw)
    {
        var (p, r) = Texts(predictions, references);
        if (p.Count == 0) throw new ArgumentException("chrf: no predictions (sacrebleu fails on an empty corpus as well).");
        RequireSameReferenceCount(r, "ChrF, as implemented by sacrebleu,");
        var o = new ChrFOptions
        {
            CharOrder = kw.GetInt("char_order", 6),
            WordOrder = kw.GetInt("word_order", 0),
            Beta = kw.GetInt("beta", 2),
            Lowercase = kw.GetBool("lowercase", false),
            Whitespace = kw.GetBool("whitespace", false),
            EpsSmoothing = kw.GetBool("eps_smoothing", false),
        };
        return new MetricResult().Set("score", ChrF.CorpusScore(p, r, o)).Set("char_order", o.CharOrder).Set("word_order", o.WordOrder).Set("beta", o.Beta);
    }
}

/// <summary>
/// HF <c>bleu</c> (tensorflow/nmt BLEU on 13a tokens). Result keys: <c>bleu</c> (in [0, 1]), <c>brevity_penalty</c>,
/// <c>length_ratio</c>, <c>translation_length</c>, <c>reference_length</c> (scalars) and <c>precisions</c> (vector).
/// Kwargs: <c>max_order</c> (4), <c>smooth</c> (false), <c>tokenizer</c> (a <c>Func&lt;string, IReadOnlyList&lt;string&gt;&gt;</c>; default 13a).
/// </summary>
public sealed class BleuMetric() : TextMetric("bleu")
{
    /// <inheritdoc/>
    public override IReadOnlyCollection<string> KwargNames { get; } = ["max_order", "smooth", "tokenizer"];

    private protected override MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kw)
    {
        var (p, r) = Texts(predictions, references);
        Func<string, IReadOnlyList<string>> tokenize = kw.Raw("tokenizer") switch
        {
            null => s => PythonText.Split(SacreBleuTokenizers.Tokenize13a(s)),
            Func<string, IReadOnlyList<string>> f => f,
            var other => throw kw.Bad("tokenizer", other, "a Func<string, IReadOnlyList<string>>"),
        };
        var score = GoogleBleu.Compute(
            r.Select(refs => (IReadOnlyList<IReadOnlyList<string>>)refs.Select(tokenize).ToList()).ToList(),
            p.Select(tokenize).ToList(), kw.GetInt("max_order", 4), kw.GetBool("smooth", false));
        return new MetricResult().Set("bleu", score.Bleu).SetVector("precisions", score.Precisions).Set("brevity_penalty", score.BrevityPenalty)
            .Set("length_ratio", score.LengthRatio).Set("translation_length", score.TranslationLength).Set("reference_length", score.ReferenceLength);
    }
}

/// <summary>
/// HF <c>rouge</c> (Google rouge_score). Result keys: one per ROUGE type (default <c>rouge1</c>, <c>rouge2</c>, <c>rougeL</c>,
/// <c>rougeLsum</c>), the F-measure. With several references per prediction the best reference counts (<c>score_multi</c>).
/// Aggregation: HF uses rouge_score's <c>BootstrapAggregator</c> and reports the bootstrap median ("mid") of the mean,
/// which is random (unseeded numpy) and equals the plain mean for one example or identical scores; we report the plain
/// mean, which is what the bootstrap estimates. <c>use_aggregator=false</c> gives per-example vectors.
/// Kwargs: <c>rouge_types</c>, <c>use_aggregator</c> (true), <c>use_stemmer</c> (false), <c>tokenizer</c> (<c>Func&lt;string, IReadOnlyList&lt;string&gt;&gt;</c>).
/// </summary>
public sealed class RougeMetric() : TextMetric("rouge")
{
    /// <inheritdoc/>
    public override IReadOnlyCollection<string> KwargNames { get; } = ["rouge_types", "use_aggregator", "use_stemmer", "tokenizer"];

    private protected override MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kw)
    {
        var (p, r) = Texts(predictions, references);
        var types = kw.GetStrings("rouge_types") ?? ["rouge1", "rouge2", "rougeL", "rougeLsum"];
        Func<string, IReadOnlyList<string>>? tokenizer = kw.Raw("tokenizer") switch
        {
            null => null,
            Func<string, IReadOnlyList<string>> f => f,
            var other => throw kw.Bad("tokenizer", other, "a Func<string, IReadOnlyList<string>>"),
        };
        var scorer = new RougeScorer(types, kw.GetBool("use_stemmer", false), tokenizer);
        var scores = p.Select((pred, i) => scorer.ScoreMulti(r[i], pred)).ToList();
        var result = new MetricResult();
        bool aggregate = kw.GetBool("use_aggregator", true);
        foreach (var t in types)
        {
            var f = scores.Select(s => s[t].FMeasure).ToArray();
            if (aggregate) result.Set(t, f.Length == 0 ? double.NaN : f.Sum() / f.Length);
            else result.SetVector(t, f);
        }
        return result;
    }
}

/// <summary>
/// HF <c>exact_match</c>: the fraction of predictions equal to their reference, after optional
/// <c>regexes_to_ignore</c> (removed from both, in order), <c>ignore_case</c>, <c>ignore_punctuation</c> (ASCII
/// <c>string.punctuation</c>) and <c>ignore_numbers</c> (ASCII digits). Result key <c>exact_match</c> in [0, 1]; NaN for no input.
/// </summary>
public sealed class ExactMatchMetric() : TextMetric("exact_match")
{
    /// <inheritdoc/>
    public override IReadOnlyCollection<string> KwargNames { get; } = ["regexes_to_ignore", "ignore_case", "ignore_punctuation", "ignore_numbers"];

    private protected override MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kw)
    {
        var p = predictions.Select((x, i) => AsText(x, i)).ToList();
        var r = references.Select((x, i) => AsText(x, i, "reference")).ToList();
        foreach (var pattern in kw.GetStrings("regexes_to_ignore") ?? [])
        {
            var re = new Regex(pattern, RegexOptions.CultureInvariant);
            p = p.Select(x => re.Replace(x, "")).ToList();
            r = r.Select(x => re.Replace(x, "")).ToList();
        }
        if (kw.GetBool("ignore_case", false)) { p = p.Select(PythonText.Lower).ToList(); r = r.Select(PythonText.Lower).ToList(); }
        if (kw.GetBool("ignore_punctuation", false)) { p = p.Select(s => Remove(s, PythonText.AsciiPunctuation)).ToList(); r = r.Select(s => Remove(s, PythonText.AsciiPunctuation)).ToList(); }
        if (kw.GetBool("ignore_numbers", false)) { p = p.Select(s => Remove(s, "0123456789")).ToList(); r = r.Select(s => Remove(s, "0123456789")).ToList(); }
        double hits = p.Where((x, i) => string.Equals(x, r[i], StringComparison.Ordinal)).Count();
        return new MetricResult().Set("exact_match", p.Count == 0 ? double.NaN : hits / p.Count);
    }

    private static string Remove(string s, string chars)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var c in s) if (chars.IndexOf(c) < 0) sb.Append(c);
        return sb.ToString();
    }
}

/// <summary>
/// HF <c>squad</c> (the official SQuAD v1.1 script): per question, the best exact match and token F1 over its answer
/// texts after SQuAD normalisation (lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace),
/// averaged and reported in percent under <c>exact_match</c> and <c>f1</c>. Predictions are answer texts; references
/// are the answer texts of each question (<c>references[i]</c> = HF's <c>references[i]["answers"]["text"]</c>).
/// </summary>
public sealed class SquadMetric() : TextMetric("squad")
{
    private static readonly Regex Articles = new(@"\b(a|an|the)\b", RegexOptions.CultureInvariant);

    /// <inheritdoc/>
    public override IReadOnlyCollection<string> KwargNames { get; } = [];

    /// <summary>SQuAD's <c>normalize_answer</c>.</summary>
    public static string NormalizeAnswer(string s)
    {
        s = PythonText.Lower(s);
        var sb = new StringBuilder(s.Length);
        foreach (var c in s) if (PythonText.AsciiPunctuation.IndexOf(c) < 0) sb.Append(c);
        s = Articles.Replace(sb.ToString(), " ");
        return string.Join(' ', PythonText.Split(s));
    }

    /// <summary>SQuAD's token-level F1 of one prediction against one answer.</summary>
    public static double F1(string prediction, string groundTruth)
    {
        var p = PythonText.Split(NormalizeAnswer(prediction));
        var g = PythonText.Split(NormalizeAnswer(groundTruth));
        var gCounts = g.GroupBy(x => x, StringComparer.Ordinal).ToDictionary(x => x.Key, x => x.Count(), StringComparer.Ordinal);
        int same = 0;
        foreach (var grp in p.GroupBy(x => x, StringComparer.Ordinal))
            same += Math.Min(grp.Count(), gCounts.GetValueOrDefault(grp.Key));
        if (same == 0) return 0;
        double precision = (double)same / p.Count, recall = (double)same / g.Count;
        return 2 * precision * recall / (precision + recall);
    }

    private protected override MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kw)
    {
        var (p, r) = Texts(predictions, references);
        if (p.Count == 0) throw new ArgumentException("squad: no questions (the SQuAD script divides by the number of questions).");
        double em = 0, f1 = 0;
        for (int i = 0; i < p.Count; i++)
        {
            if (r[i].Count == 0) throw new ArgumentException($"squad: question {i} has no answer text (the SQuAD script takes the max over answers).");
            em += r[i].Max(g => NormalizeAnswer(p[i]) == NormalizeAnswer(g) ? 1.0 : 0.0);
            f1 += r[i].Max(g => F1(p[i], g));
        }
        return new MetricResult().Set("exact_match", 100.0 * em / p.Count).Set("f1", 100.0 * f1 / p.Count);
    }
}
