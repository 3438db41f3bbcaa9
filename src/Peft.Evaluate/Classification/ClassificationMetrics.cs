namespace Peft.Evaluate.Classification;

/// <summary>HF <c>accuracy</c>: scikit-learn <c>accuracy_score</c>. Kwargs: <c>normalize</c> (bool, default true), <c>sample_weight</c>.</summary>
public sealed class AccuracyMetric() : Metric("accuracy")
{
    /// <inheritdoc/>
    public override IReadOnlyCollection<string> KwargNames { get; } = ["normalize", "sample_weight"];

    private protected override MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kw)
    {
        var yTrue = Labels.NormalizeAll(references, Name, "references");
        var yPred = Labels.NormalizeAll(predictions, Name, "predictions");
        return new MetricResult().Set("accuracy",
            SklearnMetrics.Accuracy(yTrue, yPred, kw.GetBool("normalize", true), kw.GetDoubles("sample_weight"), Name));
    }
}

/// <summary>
/// Shared body of HF <c>precision</c>, <c>recall</c> and <c>f1</c> (scikit-learn <c>precision_recall_fscore_support</c>).
/// Kwargs: <c>average</c> ("binary" default, "micro", "macro", "weighted", or null/"none" for per-class scores in
/// <see cref="MetricResult.Vectors"/>), <c>pos_label</c> (default 1), <c>labels</c>, <c>sample_weight</c>,
/// <c>zero_division</c> ("warn" default, 0, 1, NaN). With <c>average=None</c> and one label the result is a scalar, as in HF.
/// </summary>
public abstract class PrfMetric : Metric
{
    private readonly string _which;

    private protected PrfMetric(string name, string which) : base(name) => _which = which;

    /// <inheritdoc/>
    public override IReadOnlyCollection<string> KwargNames { get; } = ["labels", "pos_label", "average", "sample_weight", "zero_division"];

    private protected override MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kw)
    {
        var yTrue = Labels.NormalizeAll(references, Name, "references");
        var yPred = Labels.NormalizeAll(predictions, Name, "predictions");
        string? average = kw.IsNone("average") ? null : kw.GetString("average", "binary");
        object? posLabel = kw.Has("pos_label") ? (kw.Raw("pos_label") is null ? null : Labels.Normalize(kw.Raw("pos_label"), Name, "pos_label")) : 1.0;
        var labels = kw.GetList("labels")?.Select(l => Labels.Normalize(l, Name, "labels")).ToList();
        var zd = ZeroDivision.Parse(kw.Raw("zero_division"), Name);
        var prf = SklearnMetrics.PrecisionRecallFscore(yTrue, yPred, 1.0, labels, posLabel, average,
            new HashSet<string> { _which }, kw.GetDoubles("sample_weight"), zd, Name);
        var values = _which switch { "precision" => prf.Precision, "recall" => prf.Recall, _ => prf.FScore };
        var result = new MetricResult();
        if (values.Length == 1) result.Set(Name, values[0]);
        else result.SetVector(Name, values);
        foreach (var w in prf.Warnings) result.Warn(w);
        return result;
    }
}

/// <summary>HF <c>precision</c> (scikit-learn <c>precision_score</c>); see <see cref="PrfMetric"/> for kwargs.</summary>
public sealed class PrecisionMetric() : PrfMetric("precision", "precision");

/// <summary>HF <c>recall</c> (scikit-learn <c>recall_score</c>); see <see cref="PrfMetric"/> for kwargs.</summary>
public sealed class RecallMetric() : PrfMetric("recall", "recall");

/// <summary>HF <c>f1</c> (scikit-learn <c>f1_score</c>); see <see cref="PrfMetric"/> for kwargs.</summary>
public sealed class F1Metric() : PrfMetric("f1", "f-score");

/// <summary>HF <c>matthews_correlation</c>: scikit-learn <c>matthews_corrcoef</c> (multiclass). Kwargs: <c>sample_weight</c>.</summary>
public sealed class MatthewsCorrelationMetric() : Metric("matthews_correlation")
{
    /// <inheritdoc/>
    public override IReadOnlyCollection<string> KwargNames { get; } = ["sample_weight"];

    private protected override MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kw)
    {
        var yTrue = Labels.NormalizeAll(references, Name, "references");
        var yPred = Labels.NormalizeAll(predictions, Name, "predictions");
        return new MetricResult().Set("matthews_correlation", SklearnMetrics.Matthews(yTrue, yPred, kw.GetDoubles("sample_weight"), Name));
    }
}

/// <summary>
/// HF <c>confusion_matrix</c>: scikit-learn <c>confusion_matrix</c>, returned in <see cref="MetricResult.Matrices"/> under
/// <c>"confusion_matrix"</c> (row i = true label i, column j = predicted label j, labels in sorted order unless
/// <c>labels</c> is given). Kwargs: <c>labels</c>, <c>sample_weight</c>, <c>normalize</c> ("true", "pred", "all").
/// </summary>
public sealed class ConfusionMatrixMetric() : Metric("confusion_matrix")
{
    /// <inheritdoc/>
    public override IReadOnlyCollection<string> KwargNames { get; } = ["labels", "sample_weight", "normalize"];

    private protected override MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kw)
    {
        var yTrue = Labels.NormalizeAll(references, Name, "references");
        var yPred = Labels.NormalizeAll(predictions, Name, "predictions");
        var labels = kw.GetList("labels")?.Select(l => Labels.Normalize(l, Name, "labels")).ToList();
        var cm = SklearnMetrics.ConfusionMatrix(yTrue, yPred, labels, kw.GetDoubles("sample_weight"),
            kw.IsNone("normalize") ? null : kw.GetString("normalize", null), Name);
        return new MetricResult().SetMatrix("confusion_matrix", cm);
    }
}

/// <summary>
/// HF <c>roc_auc</c> (binary): scikit-learn <c>roc_auc_score(references, prediction_scores)</c>. The predictions are the
/// scores of the positive class; references are 0/1 (or -1/1, or any two labels with <c>pos_label</c>).
/// Kwargs: <c>sample_weight</c>, <c>max_fpr</c>, <c>pos_label</c>. Multiclass/multilabel ROC AUC is not implemented.
/// </summary>
public sealed class RocAucMetric() : Metric("roc_auc")
{
    /// <inheritdoc/>
    public override IReadOnlyCollection<string> KwargNames { get; } = ["sample_weight", "max_fpr", "pos_label", "average"];

    /// <summary>Computes binary ROC AUC from positive-class scores and integer labels.</summary>
    public MetricResult Compute(IReadOnlyList<double> predictionScores, IReadOnlyList<int> references, IReadOnlyDictionary<string, object>? kwargs = null)
    {
        ArgumentNullException.ThrowIfNull(predictionScores);
        ArgumentNullException.ThrowIfNull(references);
        return Run(predictionScores.Select(x => (object?)x).ToList(), references.Select(x => (object?)x).ToList(), kwargs);
    }

    private protected override MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kw)
    {
        var yTrue = Labels.NormalizeAll(references, Name, "references");
        var scores = predictions.Select((p, i) => Labels.Normalize(p, Name, "prediction scores") is double d ? d
            : throw new ArgumentException($"Metric '{Name}': prediction score {i} must be a number, got {Kwargs.Describe(p)}.")).ToArray();
        object? pos = kw.Raw("pos_label") is { } raw ? Labels.Normalize(raw, Name, "pos_label") : null;
        return new MetricResult().Set("roc_auc",
            SklearnMetrics.RocAuc(yTrue, scores, kw.GetDoubles("sample_weight"), kw.GetDouble("max_fpr", null), pos, Name));
    }
}
