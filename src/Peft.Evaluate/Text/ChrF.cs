namespace Peft.Evaluate.Text;

/// <summary>Options of sacrebleu's <c>CHRF</c> (defaults: chrF2 with character 6-grams; <c>WordOrder = 2</c> gives chrF++).</summary>
public sealed record ChrFOptions
{
    /// <summary>Character n-gram order (default 6).</summary>
    public int CharOrder { get; init; } = 6;

    /// <summary>Word n-gram order (default 0; 2 is chrF++).</summary>
    public int WordOrder { get; init; }

    /// <summary>Recall weight beta (default 2).</summary>
    public int Beta { get; init; } = 2;

    /// <summary>Lowercase first.</summary>
    public bool Lowercase { get; init; }

    /// <summary>Keep whitespace in character n-grams (default false: whitespace is removed).</summary>
    public bool Whitespace { get; init; }

    /// <summary>Epsilon smoothing as chrF++.py/NLTK/Moses instead of sacrebleu 2's effective order (default false).</summary>
    public bool EpsSmoothing { get; init; }
}

/// <summary>
/// sacrebleu 2.x chrF / chrF++ (<c>sacrebleu/metrics/chrf.py</c>). Character n-grams are taken over code points
/// (as Python indexes strings), with whitespace removed unless <see cref="ChrFOptions.Whitespace"/>. For several
/// references the statistics of the reference with the best sentence-level score are used; corpus statistics are sums.
/// </summary>
public static class ChrF
{
    private const string Puncts = PythonText.AsciiPunctuation;

    /// <summary><c>CHRF(...).corpus_score(hypotheses, references)</c> with HF's layout: <paramref name="referencesPerHypothesis"/>[i] belongs to hypothesis i.</summary>
    public static double CorpusScore(IReadOnlyList<string> hypotheses, IReadOnlyList<IReadOnlyList<string?>> referencesPerHypothesis, ChrFOptions? options = null)
    {
        options ??= new ChrFOptions();
        if (hypotheses.Count != referencesPerHypothesis.Count)
            throw new ArgumentException($"chrF: {hypotheses.Count} hypotheses but {referencesPerHypothesis.Count} reference sets.");
        int order = options.CharOrder + options.WordOrder;
        var sums = new double[3 * order];
        for (int s = 0; s < hypotheses.Count; s++)
        {
            var stats = SegmentStatistics(hypotheses[s], referencesPerHypothesis[s], options);
            for (int i = 0; i < stats.Length; i++) sums[i] += stats[i];
        }
        return FScore(sums, options);
    }

    /// <summary><c>sacrebleu.sentence_chrf(hypothesis, references)</c>.</summary>
    public static double SentenceScore(string hypothesis, IReadOnlyList<string> references, ChrFOptions? options = null) =>
        CorpusScore([hypothesis], [references], options);

    private static double[] SegmentStatistics(string hypothesis, IReadOnlyList<string?> references, ChrFOptions o)
    {
        var hyp = Ngrams(o.Lowercase ? PythonText.Lower(hypothesis) : hypothesis, o);
        double[] best = [];
        double bestF = -1.0;
        foreach (var reference in references)
        {
            if (reference is null) continue;
            var refNgrams = Ngrams(o.Lowercase ? PythonText.Lower(reference) : reference, o);
            var stats = new double[3 * hyp.Count];
            for (int i = 0; i < hyp.Count; i++)
            {
                var (h, r) = (hyp[i], refNgrams[i]);
                long match = 0, hypCount = 0, refCount = 0;
                foreach (var (ng, c) in h)
                {
                    hypCount += c;
                    if (r.TryGetValue(ng, out var rc)) match += Math.Min(c, rc);
                }
                foreach (var c in r.Values) refCount += c;
                stats[3 * i] = r.Count > 0 ? hypCount : 0;
                stats[3 * i + 1] = refCount;
                stats[3 * i + 2] = match;
            }
            double f = FScore(stats, o);
            if (f > bestF) { bestF = f; best = stats; }
        }
        return best.Length == 0 ? new double[3 * hyp.Count] : best;
    }

    /// <summary>Character n-gram counters (orders 1..CharOrder) followed by word n-gram counters (1..WordOrder).</summary>
    private static List<Dictionary<string, int>> Ngrams(string line, ChrFOptions o)
    {
        var result = new List<Dictionary<string, int>>();
        string chars = o.Whitespace ? line : string.Concat(PythonText.Split(line));
        var starts = PythonText.CodePointStarts(chars);
        int len = starts.Length - 1;
        for (int n = 1; n <= o.CharOrder; n++)
        {
            var counter = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i + n <= len; i++)
            {
                var ng = chars.Substring(starts[i], starts[i + n] - starts[i]);
                counter[ng] = counter.GetValueOrDefault(ng) + 1;
            }
            result.Add(counter);
        }
        if (o.WordOrder > 0)
        {
            var words = RemovePunctuation(line);
            for (int n = 1; n <= o.WordOrder; n++)
            {
                var counter = new Dictionary<string, int>(StringComparer.Ordinal);
                for (int i = 0; i + n <= words.Count; i++)
                {
                    var ng = string.Join(' ', words.GetRange(i, n));
                    counter[ng] = counter.GetValueOrDefault(ng) + 1;
                }
                result.Add(counter);
            }
        }
        return result;
    }

    /// <summary>chrF++'s word split: a word longer than one code point loses one trailing, else one leading, ASCII punctuation mark.</summary>
    private static List<string> RemovePunctuation(string sent)
    {
        var tokens = new List<string>();
        foreach (var w in PythonText.Split(sent))
        {
            var cps = PythonText.CodePointStarts(w);
            int n = cps.Length - 1;
            if (n == 1) { tokens.Add(w); continue; }
            string last = w[cps[n - 1]..], first = w[..cps[1]];
            if (last.Length == 1 && Puncts.Contains(last[0])) { tokens.Add(w[..cps[n - 1]]); tokens.Add(last); }
            else if (first.Length == 1 && Puncts.Contains(first[0])) { tokens.Add(first); tokens.Add(w[cps[1]..]); }
            else tokens.Add(w);
        }
        return tokens;
    }

    /// <summary>sacrebleu <c>CHRF._compute_f_score</c> on flattened [hyp, ref, match] triples, in [0, 100].</summary>
    internal static double FScore(double[] statistics, ChrFOptions o)
    {
        const double eps = 1e-16;
        double score = 0.0, avgPrec = 0.0, avgRec = 0.0;
        int effectiveOrder = 0;
        double factor = o.Beta * o.Beta;
        int order = statistics.Length / 3;
        for (int i = 0; i < order; i++)
        {
            double nHyp = statistics[3 * i], nRef = statistics[3 * i + 1], nMatch = statistics[3 * i + 2];
            double prec = nHyp > 0 ? nMatch / nHyp : eps;
            double rec = nRef > 0 ? nMatch / nRef : eps;
            double denom = factor * prec + rec;
            score += denom > 0 ? (1 + factor) * prec * rec / denom : eps;
            if (nHyp > 0 && nRef > 0)
            {
                avgPrec += prec;
                avgRec += rec;
                effectiveOrder++;
            }
        }
        if (o.EpsSmoothing) return 100 * score / (o.CharOrder + o.WordOrder);
        if (effectiveOrder == 0) avgPrec = avgRec = 0.0;
        else { avgPrec /= effectiveOrder; avgRec /= effectiveOrder; }
        if (avgPrec + avgRec != 0)
        {
            score = (1 + factor) * avgPrec * avgRec;
            score /= factor * avgPrec + avgRec;
            return 100 * score;
        }
        return 0.0;
    }
}
