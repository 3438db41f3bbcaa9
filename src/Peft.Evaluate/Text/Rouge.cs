using System.Text.RegularExpressions;

namespace Peft.Evaluate.Text;

/// <summary>Precision, recall and F-measure of one ROUGE type (rouge_score's <c>Score</c>).</summary>
public readonly record struct RougeScore(double Precision, double Recall, double FMeasure);

/// <summary>
/// Google's <c>rouge_score</c> (<c>rouge/rouge_scorer.py</c>, <c>tokenize.py</c>) as used by HF evaluate's <c>rouge</c>:
/// the default tokenizer lowercases, replaces every run of characters outside <c>[a-z0-9]</c> with a space (so
/// non-ASCII text yields no tokens, exactly as rouge_score), optionally Porter-stems tokens longer than 3 characters,
/// and keeps tokens matching <c>^[a-z0-9]+$</c>. <c>rougeN</c> counts clipped n-gram overlap, <c>rougeL</c> is the
/// longest common subsequence, and <c>rougeLsum</c> the summary-level union LCS over newline-separated sentences.
/// </summary>
public sealed class RougeScorer
{
    private static readonly Regex NonAlphanumeric = new("[^a-z0-9]+", RegexOptions.CultureInvariant);
    private static readonly Regex Spaces = new(@"\s+", RegexOptions.CultureInvariant);
    private static readonly Regex ValidToken = new("^[a-z0-9]+$", RegexOptions.CultureInvariant);
    private static readonly Regex RougeN = new("^rouge[0-9]$", RegexOptions.CultureInvariant);

    private readonly IReadOnlyList<string> _types;
    private readonly PorterStemmer? _stemmer;
    private readonly Func<string, IReadOnlyList<string>>? _tokenizer;

    /// <summary>Creates a scorer for <paramref name="rougeTypes"/> (<c>rouge1</c>..<c>rouge9</c>, <c>rougeL</c>, <c>rougeLsum</c>).</summary>
    /// <param name="rougeTypes">The ROUGE types to compute.</param>
    /// <param name="useStemmer">Porter-stem tokens longer than 3 characters (default tokenizer only).</param>
    /// <param name="tokenizer">A custom tokenizer replacing the default one (HF <c>tokenizer=</c>).</param>
    public RougeScorer(IReadOnlyList<string> rougeTypes, bool useStemmer = false, Func<string, IReadOnlyList<string>>? tokenizer = null)
    {
        foreach (var t in rougeTypes)
        {
            if (t is "rougeL" or "rougeLsum") continue;
            if (!RougeN.IsMatch(t)) throw new ArgumentException($"Invalid rouge type: {t}", nameof(rougeTypes));
            if (t[5] == '0') throw new ArgumentException($"rougen requires positive n: {t}", nameof(rougeTypes));
        }
        _types = rougeTypes.ToList();
        _stemmer = useStemmer ? new PorterStemmer() : null;
        _tokenizer = tokenizer;
    }

    /// <summary>rouge_score's default tokenizer (<c>tokenize.tokenize(text, stemmer)</c>).</summary>
    public IReadOnlyList<string> Tokenize(string text)
    {
        if (_tokenizer is not null) return _tokenizer(text);
        text = PythonText.Lower(text);
        text = NonAlphanumeric.Replace(text, " ");
        var tokens = Spaces.Split(text);
        var result = new List<string>(tokens.Length);
        foreach (var raw in tokens)
        {
            var tok = _stemmer is not null && raw.Length > 3 ? _stemmer.Stem(raw) : raw;
            if (ValidToken.IsMatch(tok)) result.Add(tok);
        }
        return result;
    }

    /// <summary><c>RougeScorer.score(target, prediction)</c>.</summary>
    public IReadOnlyDictionary<string, RougeScore> Score(string target, string prediction)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(prediction);
        IReadOnlyList<string>? targetTokens = null, predictionTokens = null;
        var result = new Dictionary<string, RougeScore>(StringComparer.Ordinal);
        foreach (var type in _types)
        {
            if (type == "rougeLsum")
            {
                var t = Sentences(target).Select(Tokenize).ToList();
                var p = Sentences(prediction).Select(Tokenize).ToList();
                result[type] = SummaryLevelLcs(t, p);
                continue;
            }
            targetTokens ??= Tokenize(target);
            predictionTokens ??= Tokenize(prediction);
            result[type] = type == "rougeL"
                ? ScoreLcs(targetTokens, predictionTokens)
                : ScoreNgrams(Ngrams(targetTokens, type[5] - '0'), Ngrams(predictionTokens, type[5] - '0'));
        }
        return result;
    }

    /// <summary><c>RougeScorer.score_multi(targets, prediction)</c>: per type, the score against the target with the highest F-measure (first wins ties).</summary>
    public IReadOnlyDictionary<string, RougeScore> ScoreMulti(IReadOnlyList<string> targets, string prediction)
    {
        if (targets.Count == 0) throw new ArgumentException("rouge: a prediction needs at least one reference.", nameof(targets));
        var all = targets.Select(t => Score(t, prediction)).ToList();
        var best = new Dictionary<string, RougeScore>(StringComparer.Ordinal);
        foreach (var type in _types)
        {
            int arg = 0;
            for (int i = 1; i < all.Count; i++) if (all[i][type].FMeasure > all[arg][type].FMeasure) arg = i;
            best[type] = all[arg][type];
        }
        return best;
    }

    private static IEnumerable<string> Sentences(string text) => text.Split('\n').Where(s => s.Length > 0);

    private static Dictionary<string, int> Ngrams(IReadOnlyList<string> tokens, int n)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i + n <= tokens.Count; i++)
        {
            var key = string.Join('\0', tokens.Skip(i).Take(n));
            counts[key] = counts.GetValueOrDefault(key) + 1;
        }
        return counts;
    }

    private static double FMeasure(double precision, double recall) =>
        precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;

    private static RougeScore ScoreNgrams(Dictionary<string, int> target, Dictionary<string, int> prediction)
    {
        long intersection = 0;
        foreach (var (ng, c) in target) intersection += Math.Min(c, prediction.GetValueOrDefault(ng));
        long targetCount = target.Values.Sum(), predictionCount = prediction.Values.Sum();
        double precision = (double)intersection / Math.Max(predictionCount, 1);
        double recall = (double)intersection / Math.Max(targetCount, 1);
        return new RougeScore(precision, recall, FMeasure(precision, recall));
    }

    private static int[,] LcsTable(IReadOnlyList<string> reference, IReadOnlyList<string> candidate)
    {
        int rows = reference.Count, cols = candidate.Count;
        var t = new int[rows + 1, cols + 1];
        for (int i = 1; i <= rows; i++)
            for (int j = 1; j <= cols; j++)
                t[i, j] = reference[i - 1] == candidate[j - 1] ? t[i - 1, j - 1] + 1 : Math.Max(t[i - 1, j], t[i, j - 1]);
        return t;
    }

    private static RougeScore ScoreLcs(IReadOnlyList<string> target, IReadOnlyList<string> prediction)
    {
        if (target.Count == 0 || prediction.Count == 0) return new RougeScore(0, 0, 0);
        int lcs = LcsTable(target, prediction)[target.Count, prediction.Count];
        double precision = (double)lcs / prediction.Count, recall = (double)lcs / target.Count;
        return new RougeScore(precision, recall, FMeasure(precision, recall));
    }

    /// <summary>Indices into <paramref name="reference"/> of one LCS, read back from the table as rouge_score does.</summary>
    private static List<int> LcsIndices(IReadOnlyList<string> reference, IReadOnlyList<string> candidate)
    {
        var t = LcsTable(reference, candidate);
        int i = reference.Count, j = candidate.Count;
        var lcs = new List<int>();
        while (i > 0 && j > 0)
        {
            if (reference[i - 1] == candidate[j - 1]) { lcs.Insert(0, i - 1); i--; j--; }
            else if (t[i, j - 1] > t[i - 1, j]) j--;
            else i--;
        }
        return lcs;
    }

    private static RougeScore SummaryLevelLcs(List<IReadOnlyList<string>> refSents, List<IReadOnlyList<string>> canSents)
    {
        if (refSents.Count == 0 || canSents.Count == 0) return new RougeScore(0, 0, 0);
        int m = refSents.Sum(s => s.Count), n = canSents.Sum(s => s.Count);
        if (m == 0 || n == 0) return new RougeScore(0, 0, 0);
        var refCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        var canCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var s in refSents) foreach (var t in s) refCounts[t] = refCounts.GetValueOrDefault(t) + 1;
        foreach (var s in canSents) foreach (var t in s) canCounts[t] = canCounts.GetValueOrDefault(t) + 1;
        int hits = 0;
        foreach (var r in refSents)
        {
            var union = new SortedSet<int>();
            foreach (var c in canSents) union.UnionWith(LcsIndices(r, c));
            foreach (var idx in union)
            {
                var tok = r[idx];
                if (canCounts.GetValueOrDefault(tok) > 0 && refCounts.GetValueOrDefault(tok) > 0)
                {
                    hits++;
                    canCounts[tok]--;
                    refCounts[tok]--;
                }
            }
        }
        double recall = (double)hits / m, precision = (double)hits / n;
        return new RougeScore(precision, recall, FMeasure(precision, recall));
    }
}
