namespace Peft.Evaluate.Classification;

/// <summary>
/// The scikit-learn 1.9 algorithms behind the classification metrics (<c>sklearn/metrics/_classification.py</c>,
/// <c>_ranking.py</c>), re-implemented from their documented behaviour. Inputs are already normalised labels
/// (see <see cref="Labels"/>) of equal length; <c>y_true</c> comes first, as in scikit-learn.
/// </summary>
internal static class SklearnMetrics
{
    public static double[] Weights(IReadOnlyList<double>? sampleWeight, int n, string metric)
    {
        if (sampleWeight is null) return Enumerable.Repeat(1.0, n).ToArray();
        if (sampleWeight.Count != n)
            throw new ArgumentException($"Metric '{metric}': sample_weight has {sampleWeight.Count} entries but there are {n} samples.", "sample_weight");
        return sampleWeight.ToArray();
    }

    /// <summary><c>accuracy_score(y_true, y_pred, normalize, sample_weight)</c>.</summary>
    public static double Accuracy(object[] yTrue, object[] yPred, bool normalize, IReadOnlyList<double>? sampleWeight, string metric)
    {
        Labels.SortedUnique(yTrue, yPred); // type check, as _check_targets
        var w = Weights(sampleWeight, yTrue.Length, metric);
        double hit = 0, total = 0;
        for (int i = 0; i < yTrue.Length; i++)
        {
            if (yTrue[i].Equals(yPred[i])) hit += w[i];
            total += w[i];
        }
        if (!normalize) return hit;
        if (yTrue.Length == 0) return double.NaN; // numpy: mean of an empty array
        if (total == 0) throw new ArgumentException($"Metric '{metric}': sample weights sum to zero, accuracy cannot be normalised.", "sample_weight");
        return hit / total;
    }

    /// <summary>Result of <c>precision_recall_fscore_support</c>: per label, or one averaged value each.</summary>
    public sealed record Prf(double[] Precision, double[] Recall, double[] FScore, double[]? Support, bool Averaged, List<string> Warnings);

    /// <summary><c>precision_recall_fscore_support(y_true, y_pred, beta, labels, pos_label, average, warn_for, sample_weight, zero_division)</c>;
    /// <c>average</c> is null for None, else binary / micro / macro / weighted / samples.</summary>
    public static Prf PrecisionRecallFscore(object[] yTrue, object[] yPred, double beta, IReadOnlyList<object>? labels, object? posLabel,
        string? average, ISet<string> warnFor, IReadOnlyList<double>? sampleWeight, ZeroDivision zeroDivision, string metric)
    {
        if (beta < 0) throw new ArgumentException($"Metric '{metric}': beta should be >= 0 in the F-beta score, got {beta}.", nameof(beta));
        var warnings = new List<string>();
        string[] options = ["micro", "macro", "weighted", "samples", "binary"];
        if (average is not null && !options.Contains(average))
            throw new ArgumentException($"Metric '{metric}': average has to be one of (None, 'micro', 'macro', 'weighted', 'samples', 'binary'), got '{average}'.", "average");
        var present = Labels.SortedUnique(yTrue, yPred);
        bool binaryTarget = present.Count <= 2;
        if (average == "samples")
            throw new ArgumentException($"Metric '{metric}': Samplewise metrics are not available outside of multilabel classification.", "average");

        // _check_set_wise_labels
        if (average == "binary")
        {
            if (!binaryTarget)
                throw new ArgumentException(
                    $"Metric '{metric}': Target is multiclass but average='binary'. Please choose another average setting, one of [None, 'micro', 'macro', 'weighted', 'samples'].", "average");
            var pos = posLabel ?? throw new ArgumentException($"Metric '{metric}': pos_label=None is not valid with average='binary'.", "pos_label");
            if (!present.Contains(pos) && present.Count >= 2)
                throw new ArgumentException($"Metric '{metric}': pos_label={Labels.Format(pos)} is not a valid label. It should be one of {Labels.FormatList(present)}", "pos_label");
            labels = [pos];
        }
        else if (posLabel is not null && !(posLabel is double d && d == 1.0))
        {
            warnings.Add($"Note that pos_label (set to {Labels.Format(posLabel)}) is ignored when average != 'binary' (got {(average is null ? "None" : "'" + average + "'")}). You may use labels=[pos_label] to specify a single positive class.");
        }

        // multilabel_confusion_matrix (multiclass branch)
        var w = Weights(sampleWeight, yTrue.Length, metric);
        List<object> allLabels;
        int nLabels;
        if (labels is null) { allLabels = present; nLabels = present.Count; }
        else
        {
            allLabels = labels.ToList();
            nLabels = allLabels.Count;
            var given = new HashSet<object>(allLabels);
            allLabels.AddRange(present.Where(p => !given.Contains(p)));
        }
        var index = new Dictionary<object, int>();
        for (int i = 0; i < allLabels.Count; i++) index.TryAdd(allLabels[i], i);
        var tp = new double[allLabels.Count];
        var predSum = new double[allLabels.Count];
        var trueSum = new double[allLabels.Count];
        for (int i = 0; i < yTrue.Length; i++)
        {
            int t = index[yTrue[i]], p = index[yPred[i]];
            trueSum[t] += w[i];
            predSum[p] += w[i];
            if (t == p) tp[t] += w[i];
        }
        tp = tp[..nLabels]; predSum = predSum[..nLabels]; trueSum = trueSum[..nLabels];

        if (average == "micro")
        {
            tp = [tp.Sum()]; predSum = [predSum.Sum()]; trueSum = [trueSum.Sum()];
        }

        double beta2 = beta * beta;
        var precision = Divide(tp, predSum, "precision", "predicted", average, warnFor, zeroDivision, warnings);
        var recall = Divide(tp, trueSum, "recall", "true", average, warnFor, zeroDivision, warnings);
        double[] f;
        if (double.IsPositiveInfinity(beta)) f = recall;
        else if (beta == 0) f = precision;
        else
        {
            var num = tp.Select(x => (1 + beta2) * x).ToArray();
            var den = trueSum.Zip(predSum, (t, p) => beta2 * t + p).ToArray();
            f = Divide(num, den, "f-score", "true nor predicted", average, warnFor, zeroDivision, warnings);
        }

        if (average is null) return new Prf(precision, recall, f, trueSum, false, warnings);
        double[]? weights = average == "weighted" ? trueSum : null;
        return new Prf([NanAverage(precision, weights)], [NanAverage(recall, weights)], [NanAverage(f, weights)], null, true, warnings);
    }

    /// <summary><c>_prf_divide</c>: elementwise division where a zero denominator gives the zero_division value (and a warning for "warn").</summary>
    private static double[] Divide(double[] num, double[] den, string metric, string modifier, string? average, ISet<string> warnFor,
        ZeroDivision zd, List<string> warnings)
    {
        var result = new double[num.Length];
        bool any = false;
        for (int i = 0; i < num.Length; i++)
        {
            if (den[i] == 0.0) { result[i] = zd.Value; any = true; }
            else result[i] = num[i] / den[i];
        }
        if (any && zd.Warn && warnFor.Contains(metric))
        {
            // _warn_prf
            string axis0 = "sample", axis1 = "label";
            if (average == "samples") (axis0, axis1) = (axis1, axis0);
            string start = char.ToUpperInvariant(metric[0]) + metric[1..] + " is";
            string msg = result.Length == 1
                ? $"{start} ill-defined and being set to 0.0 due to no {modifier} {axis0}s."
                : $"{start} ill-defined and being set to 0.0 in {axis1}s with no {modifier} {axis0}s.";
            warnings.Add(msg + " Use `zero_division` parameter to control this behavior.");
        }
        return result;
    }

    /// <summary><c>_nanaverage</c>: average ignoring NaN; all-zero weights fall back to the plain mean.</summary>
    private static double NanAverage(double[] a, double[]? weights)
    {
        if (a.Length == 0) return double.NaN;
        var keep = Enumerable.Range(0, a.Length).Where(i => !double.IsNaN(a[i])).ToArray();
        if (keep.Length == 0) return double.NaN;
        if (weights is not null)
        {
            double ws = keep.Sum(i => weights[i]);
            if (ws != 0) return keep.Sum(i => a[i] * weights[i]) / ws;
        }
        return keep.Sum(i => a[i]) / keep.Length;
    }

    /// <summary><c>confusion_matrix(y_true, y_pred, labels, sample_weight, normalize)</c>.</summary>
    public static double[][] ConfusionMatrix(object[] yTrue, object[] yPred, IReadOnlyList<object>? labels, IReadOnlyList<double>? sampleWeight,
        string? normalize, string metric)
    {
        var present = Labels.SortedUnique(yTrue, yPred);
        List<object> used;
        if (labels is null) used = present;
        else
        {
            used = labels.ToList();
            if (used.Count == 0) throw new ArgumentException($"Metric '{metric}': 'labels' should contains at least one label.", "labels");
            if (yTrue.Length == 0) return Enumerable.Range(0, used.Count).Select(_ => new double[used.Count]).ToArray();
            var trueSet = new HashSet<object>(yTrue);
            if (used.All(l => !trueSet.Contains(l)))
                throw new ArgumentException($"Metric '{metric}': At least one label specified must be in y_true, got labels={Labels.FormatList(used)}.", "labels");
        }
        if (normalize is not null && normalize is not ("true" or "pred" or "all"))
            throw new ArgumentException($"Metric '{metric}': normalize must be one of {{'true', 'pred', 'all', None}}, got '{normalize}'.", "normalize");
        var w = Weights(sampleWeight, yTrue.Length, metric);
        int n = used.Count;
        var index = new Dictionary<object, int>();
        for (int i = 0; i < n; i++) index.TryAdd(used[i], i);
        var cm = Enumerable.Range(0, n).Select(_ => new double[n]).ToArray();
        for (int i = 0; i < yTrue.Length; i++)
            if (index.TryGetValue(yTrue[i], out var t) && index.TryGetValue(yPred[i], out var p))
                cm[t][p] += w[i];
        if (normalize is not null)
        {
            double all = cm.Sum(r => r.Sum());
            var colSums = Enumerable.Range(0, n).Select(j => cm.Sum(r => r[j])).ToArray();
            for (int i = 0; i < n; i++)
            {
                double rowSum = cm[i].Sum();
                for (int j = 0; j < n; j++)
                {
                    double den = normalize == "true" ? rowSum : normalize == "pred" ? colSums[j] : all;
                    double v = cm[i][j] / den;
                    cm[i][j] = double.IsNaN(v) ? 0.0 : double.IsPositiveInfinity(v) ? double.MaxValue : double.IsNegativeInfinity(v) ? double.MinValue : v; // np.nan_to_num
                }
            }
        }
        return cm;
    }

    /// <summary><c>matthews_corrcoef(y_true, y_pred, sample_weight)</c> (multiclass R_K statistic).</summary>
    public static double Matthews(object[] yTrue, object[] yPred, IReadOnlyList<double>? sampleWeight, string metric)
    {
        var cm = ConfusionMatrix(yTrue, yPred, null, sampleWeight, null, metric);
        int k = cm.Length;
        var tSum = new double[k];
        var pSum = new double[k];
        double nCorrect = 0;
        for (int i = 0; i < k; i++)
        {
            nCorrect += cm[i][i];
            for (int j = 0; j < k; j++) { tSum[i] += cm[i][j]; pSum[j] += cm[i][j]; }
        }
        double nSamples = pSum.Sum();
        double tp = 0, pp = 0, tt = 0;
        for (int i = 0; i < k; i++) { tp += tSum[i] * pSum[i]; pp += pSum[i] * pSum[i]; tt += tSum[i] * tSum[i]; }
        double covYtYp = nCorrect * nSamples - tp;
        double covYpYp = nSamples * nSamples - pp;
        double covYtYt = nSamples * nSamples - tt;
        if (covYpYp * covYtYt == 0) return 0.0;
        return covYtYp / Math.Sqrt(covYtYt * covYpYp);
    }

    /// <summary>
    /// Binary <c>roc_auc_score(y_true, y_score, sample_weight, max_fpr)</c>: the trapezoidal area under the ROC curve built
    /// at every distinct score (ties handled as one threshold), with McClish's standardisation when <paramref name="maxFpr"/> is set.
    /// </summary>
    public static double RocAuc(object[] yTrue, double[] scores, IReadOnlyList<double>? sampleWeight, double? maxFpr, object? posLabel, string metric)
    {
        var classes = Labels.SortedUnique(yTrue);
        if (classes.Count != 2)
            throw new ArgumentException($"Metric '{metric}': Only one class present in y_true. ROC AUC score is not defined in that case.", "references");
        object pos;
        if (posLabel is not null) pos = posLabel;
        else if (classes[0] is double a && classes[1] is double b && ((a == 0 && b == 1) || (a == -1 && b == 1))) pos = 1.0;
        else throw new ArgumentException($"Metric '{metric}': y_true takes value in {Labels.FormatList(classes)} and pos_label is not specified: either make y_true take value in {{0, 1}} or {{-1, 1}} or pass pos_label explicitly.", "pos_label");
        var w = Weights(sampleWeight, yTrue.Length, metric);
        foreach (var s in scores)
            if (!double.IsFinite(s)) throw new ArgumentException($"Metric '{metric}': prediction scores contain {s}; they must be finite.", "predictions");

        // _binary_clf_curve: sort by decreasing score (stable mergesort, then reversed)
        var order = Enumerable.Range(0, scores.Length).OrderBy(i => scores[i]).ToArray(); // OrderBy is stable
        Array.Reverse(order);
        var tps = new List<double>(); var fps = new List<double>();
        double ctp = 0, cfp = 0;
        for (int k = 0; k < order.Length; k++)
        {
            int i = order[k];
            bool positive = yTrue[i].Equals(pos);
            if (positive) ctp += w[i]; else cfp += w[i];
            if (k == order.Length - 1 || scores[order[k + 1]] != scores[i]) { tps.Add(ctp); fps.Add(cfp); }
        }
        tps.Insert(0, 0); fps.Insert(0, 0);
        double tpMax = tps[^1], fpMax = fps[^1];
        var tpr = tps.Select(x => x / tpMax).ToArray();
        var fpr = fps.Select(x => x / fpMax).ToArray();
        if (maxFpr is null || maxFpr == 1.0) return Trapezoid(fpr, tpr);
        double mf = maxFpr.Value;
        if (mf <= 0 || mf > 1) throw new ArgumentException($"Metric '{metric}': Expected max_fpr in range (0, 1], got: {mf}", "max_fpr");
        int stop = 0;
        while (stop < fpr.Length && fpr[stop] <= mf) stop++; // searchsorted(fpr, max_fpr, 'right')
        double x0 = fpr[stop - 1], x1 = fpr[stop], y0 = tpr[stop - 1], y1 = tpr[stop];
        double yi = x1 == x0 ? y1 : y0 + (mf - x0) * (y1 - y0) / (x1 - x0);
        var pf = fpr[..stop].Append(mf).ToArray();
        var pt = tpr[..stop].Append(yi).ToArray();
        double partial = Trapezoid(pf, pt);
        double minArea = 0.5 * mf * mf, maxArea = mf;
        return 0.5 * (1 + (partial - minArea) / (maxArea - minArea));
    }

    private static double Trapezoid(double[] x, double[] y)
    {
        double area = 0;
        for (int i = 1; i < x.Length; i++) area += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2.0;
        return area;
    }
}
