namespace Peft.Evaluate.Text;

/// <summary>A BLEU score with its sufficient statistics, as sacrebleu's <c>BLEUScore</c>.</summary>
/// <param name="Score">BLEU in [0, 100].</param>
/// <param name="Counts">Matched n-grams per order (after add-k smoothing, if any).</param>
/// <param name="Totals">Hypothesis n-grams per order (after add-k smoothing, if any).</param>
/// <param name="Precisions">Per-order precisions in percent.</param>
/// <param name="BrevityPenalty">The brevity penalty.</param>
/// <param name="SysLen">Total hypothesis length in tokens.</param>
/// <param name="RefLen">Total closest-reference length in tokens.</param>
public sealed record BleuScore(double Score, IReadOnlyList<double> Counts, IReadOnlyList<double> Totals, IReadOnlyList<double> Precisions,
    double BrevityPenalty, long SysLen, long RefLen);

/// <summary>Options of sacrebleu's <c>BLEU</c> class (defaults as <c>sacrebleu.corpus_bleu</c>).</summary>
public sealed record SacreBleuOptions
{
    /// <summary>Lowercase hypotheses and references first.</summary>
    public bool Lowercase { get; init; }

    /// <summary>Tokenizer name: 13a (default), intl, zh, char, none.</summary>
    public string Tokenize { get; init; } = "13a";

    /// <summary>Smoothing: "exp" (default), "floor", "add-k" or "none".</summary>
    public string SmoothMethod { get; init; } = "exp";

    /// <summary>Value for floor (default 0.1) and add-k (default 1); null takes the default.</summary>
    public double? SmoothValue { get; init; }

    /// <summary>Maximum n-gram order (default 4).</summary>
    public int MaxNgramOrder { get; init; } = 4;

    /// <summary>Stop at the first order without any hypothesis n-gram (sacrebleu <c>effective_order</c>; sentence BLEU uses true).</summary>
    public bool EffectiveOrder { get; init; }
}

/// <summary>
/// sacrebleu 2.x BLEU (<c>sacrebleu/metrics/bleu.py</c>): corpus-level sufficient statistics over tokenised segments,
/// clipped n-gram matches against the per-n-gram maximum over references, the closest reference length (shorter wins
/// ties), smoothing, and the brevity penalty.
/// </summary>
public static class SacreBleu
{
    private static readonly Dictionary<string, double?> SmoothDefaults = new()
    {
        ["none"] = null, ["floor"] = 0.1, ["add-k"] = 1, ["exp"] = null,
    };

    /// <summary>
    /// <c>sacrebleu.corpus_bleu(hypotheses, references)</c> where <paramref name="referencesPerHypothesis"/>[i] are the references
    /// of hypothesis i (HF evaluate's layout; sacrebleu's own layout is transposed: one stream per reference).
    /// A null reference is skipped, as in sacrebleu.
    /// </summary>
    public static BleuScore CorpusScore(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string?>> referencesPerHypothesis, SacreBleuOptions? options = null)
    {
        options ??= new SacreBleuOptions();
        if (hypotheses.Count != referencesPerHypothesis.Count)
            throw new ArgumentException($"sacrebleu: {hypotheses.Count} hypotheses but {referencesPerHypothesis.Count} reference sets.");
        if (!SmoothDefaults.ContainsKey(options.SmoothMethod))
            throw new ArgumentException($"sacrebleu: unknown smooth_method '{options.SmoothMethod}'. Use one of [none, floor, add-k, exp].", nameof(options));
        if (options.MaxNgramOrder < 1) throw new ArgumentOutOfRangeException(nameof(options), options.MaxNgramOrder, "max_ngram_order must be >= 1.");
        var tokenize = SacreBleuTokenizers.Get(options.Tokenize);
        int order = options.MaxNgramOrder;
        long sysLen = 0, refLen = 0;
        var correct = new double[order];
        var total = new double[order];
        for (int s = 0; s < hypotheses.Count; s++)
        {
            var refNgrams = new Dictionary<string, int>(StringComparer.Ordinal);
            var refLens = new List<int>();
            foreach (var r in referencesPerHypothesis[s])
            {
                if (r is null) continue;
                var (ngrams, len) = WordNgrams(tokenize(Preprocess(r, options.Lowercase)), order);
                refLens.Add(len);
                foreach (var (ng, c) in ngrams)
                    refNgrams[ng] = Math.Max(refNgrams.GetValueOrDefault(ng), c);
            }
            var (hypNgrams, hypLen) = WordNgrams(tokenize(Preprocess(hypotheses[s], options.Lowercase)), order);
            sysLen += hypLen;
            refLen += ClosestRefLength(hypLen, refLens);
            foreach (var (ng, c) in hypNgrams)
            {
                int n = NgramOrder(ng) - 1;
                total[n] += c;
                if (refNgrams.TryGetValue(ng, out var rc)) correct[n] += Math.Min(c, rc);
            }
        }
        return ComputeBleu(correct, total, sysLen, refLen, options);
    }

    /// <summary><c>sacrebleu.sentence_bleu(hypothesis, references)</c>: effective order on unless <paramref name="options"/> say otherwise.</summary>
    public static BleuScore SentenceScore(string hypothesis, IReadOnlyList<string> references, SacreBleuOptions? options = null) =>
        CorpusScore([hypothesis], [references], options ?? new SacreBleuOptions { EffectiveOrder = true });

    private static string Preprocess(string s, bool lowercase) => PythonText.RStrip(lowercase ? PythonText.Lower(s) : s);


    /// <summary>The order of an n-gram key built by <see cref="WordNgrams"/> (its first character encodes n).</summary>
    private static int NgramOrder(string key) => key[0] - '0';

    /// <summary>All n-grams of orders 1..max of a whitespace-split line, with counts, and the token count.</summary>
    internal static (Dictionary<string, int> Ngrams, int Length) WordNgrams(string line, int maxOrder)
    {
        var tokens = PythonText.Split(line);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int n = 1; n <= maxOrder; n++)
            for (int i = 0; i + n <= tokens.Count; i++)
            {
                // key: one character encoding n, then the tokens separated by a space (tokens never contain Python whitespace)
                var key = (char)('0' + n) + string.Join(' ', tokens.GetRange(i, n));
                counts[key] = counts.GetValueOrDefault(key) + 1;
            }
        return (counts, tokens.Count);
    }

    private static int ClosestRefLength(int hypLen, List<int> refLens)
    {
        int bestDiff = -1, bestLen = -1;
        foreach (var len in refLens)
        {
            int diff = Math.Abs(hypLen - len);
            if (bestDiff == -1 || diff < bestDiff) { bestDiff = diff; bestLen = len; }
            else if (diff == bestDiff && len < bestLen) bestLen = len;
        }
        return bestLen;
    }

    /// <summary>sacrebleu <c>BLEU.compute_bleu</c> from sufficient statistics (arrays are copied, not modified).</summary>
    public static BleuScore ComputeBleu(IReadOnlyList<double> correctIn, IReadOnlyList<double> totalIn, long sysLen, long refLen, SacreBleuOptions options)
    {
        var correct = correctIn.ToArray();
        var total = totalIn.ToArray();
        int maxOrder = options.MaxNgramOrder;
        double smoothValue = options.SmoothValue ?? SmoothDefaults[options.SmoothMethod] ?? 0;
        double bp = 1.0;
        if (sysLen < refLen) bp = sysLen > 0 ? Math.Exp(1 - (double)refLen / sysLen) : 0.0;
        var precisions = new double[maxOrder];
        if (correct.All(c => c == 0)) return new BleuScore(0.0, correct, total, precisions, bp, sysLen, refLen);
        double smoothMteval = 1.0;
        int effOrder = maxOrder;
        for (int n = 1; n <= maxOrder; n++)
        {
            if (options.SmoothMethod == "add-k" && n > 1)
            {
                correct[n - 1] += smoothValue;
                total[n - 1] += smoothValue;
            }
            if (total[n - 1] == 0) break;
            if (options.EffectiveOrder) effOrder = n;
            if (correct[n - 1] == 0)
            {
                if (options.SmoothMethod == "exp")
                {
                    smoothMteval *= 2;
                    precisions[n - 1] = 100.0 / (smoothMteval * total[n - 1]);
                }
                else if (options.SmoothMethod == "floor")
                    precisions[n - 1] = 100.0 * smoothValue / total[n - 1];
            }
            else precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1];
        }
        double logSum = 0;
        for (int i = 0; i < effOrder; i++) logSum += precisions[i] == 0.0 ? -9999999999 : Math.Log(precisions[i]);
        double score = bp * Math.Exp(logSum / effOrder);
        return new BleuScore(score, correct, total, precisions, bp, sysLen, refLen);
    }
}
