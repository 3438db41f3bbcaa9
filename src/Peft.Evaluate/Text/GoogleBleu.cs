namespace Peft.Evaluate.Text;

/// <summary>Result of <see cref="GoogleBleu.Compute"/> (HF evaluate <c>bleu</c> keys).</summary>
public sealed record GoogleBleuScore(double Bleu, IReadOnlyList<double> Precisions, double BrevityPenalty, double LengthRatio,
    long TranslationLength, long ReferenceLength);

/// <summary>
/// The BLEU of HF evaluate's <c>bleu</c> metric: tensorflow/nmt <c>compute_bleu</c> on token lists (by default the
/// sacrebleu 13a tokenizer, split on whitespace). Reference length is the SHORTEST reference (not the closest),
/// n-gram counts are clipped by the per-n-gram maximum over references, precisions are fractions in [0, 1],
/// <c>smooth</c> is Lin &amp; Och add-one on every order, and the score is 0 when any precision is 0.
/// </summary>
public static class GoogleBleu
{
    /// <summary>Computes BLEU on tokenised text: <paramref name="references"/>[i] are the token lists of the references of translation i.</summary>
    public static GoogleBleuScore Compute(IReadOnlyList<IReadOnlyList<IReadOnlyList<string>>> references, IReadOnlyList<IReadOnlyList<string>> translations,
        int maxOrder = 4, bool smooth = false)
    {
        if (references.Count != translations.Count)
            throw new ArgumentException($"bleu: {translations.Count} translations but {references.Count} reference sets.");
        if (maxOrder < 1) throw new ArgumentOutOfRangeException(nameof(maxOrder), maxOrder, "max_order must be >= 1.");
        var matches = new long[maxOrder];
        var possible = new long[maxOrder];
        long referenceLength = 0, translationLength = 0;
        for (int s = 0; s < translations.Count; s++)
        {
            var refs = references[s];
            if (refs.Count == 0) throw new ArgumentException($"bleu: translation {s} has no reference.");
            var translation = translations[s];
            referenceLength += refs.Min(r => r.Count);
            translationLength += translation.Count;
            var merged = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var r in refs)
                foreach (var (ng, c) in Ngrams(r, maxOrder))
                    merged[ng] = Math.Max(merged.GetValueOrDefault(ng), c);
            foreach (var (ng, c) in Ngrams(translation, maxOrder))
                if (merged.TryGetValue(ng, out var rc)) matches[ng[0] - '1'] += Math.Min(c, rc);
            for (int order = 1; order <= maxOrder; order++)
            {
                int p = translation.Count - order + 1;
                if (p > 0) possible[order - 1] += p;
            }
        }
        var precisions = new double[maxOrder];
        for (int i = 0; i < maxOrder; i++)
        {
            if (smooth) precisions[i] = (matches[i] + 1.0) / (possible[i] + 1.0);
            else precisions[i] = possible[i] > 0 ? (double)matches[i] / possible[i] : 0.0;
        }
        double geoMean = 0;
        if (precisions.Min() > 0)
        {
            double pLogSum = 0;
            foreach (var p in precisions) pLogSum += (1.0 / maxOrder) * Math.Log(p);
            geoMean = Math.Exp(pLogSum);
        }
        if (referenceLength == 0)
            throw new ArgumentException("bleu: the references have zero length in total (Python raises ZeroDivisionError here).");
        double ratio = (double)translationLength / referenceLength;
        if (translationLength == 0)
            throw new ArgumentException("bleu: the translations have zero length in total (Python raises ZeroDivisionError here).");
        double bp = ratio > 1.0 ? 1.0 : Math.Exp(1 - 1.0 / ratio);
        return new GoogleBleuScore(geoMean * bp, precisions, bp, ratio, translationLength, referenceLength);
    }

    private static Dictionary<string, int> Ngrams(IReadOnlyList<string> tokens, int maxOrder)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int n = 1; n <= maxOrder; n++)
            for (int i = 0; i + n <= tokens.Count; i++)
            {
                // order digit + tokens joined by U+0000 (a token list may hold anything, so use a separator no tokenizer emits)
                var key = (char)('0' + n) + string.Join('\0', tokens.Skip(i).Take(n));
                counts[key] = counts.GetValueOrDefault(key) + 1;
            }
        return counts;
    }
}
