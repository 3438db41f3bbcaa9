namespace Peft.Evaluate.Tests.Classification;

/// <summary>scikit-learn docstring examples (sklearn/metrics/_classification.py) and hand-derived cases for the classification metrics.</summary>
public class ClassificationTests
{
    private static Dictionary<string, object> Kw(params (string Key, object Value)[] kv) => kv.ToDictionary(x => x.Key, x => x.Value);

    private static readonly int[] YTrue = [0, 1, 2, 0, 1, 2];
    private static readonly int[] YPred = [0, 2, 1, 0, 0, 1];

    [Fact] // f1_score / precision_score / recall_score docstrings: y_true = [0, 1, 2, 0, 1, 2], y_pred = [0, 2, 1, 0, 0, 1]
    public void Sklearn_docstring_prf()
    {
        // Hand check: class 0 tp 2, predicted 3, true 2 -> P 2/3, R 1, F 0.8; classes 1 and 2 have no true positives.
        Assert.Equal(0.26666666666666666, Metrics.Load("f1").Compute(YPred, YTrue, Kw(("average", "macro")))["f1"], 1e-15);
        Assert.Equal(0.3333333333333333, Metrics.Load("f1").Compute(YPred, YTrue, Kw(("average", "micro")))["f1"], 1e-15);
        Assert.Equal(0.26666666666666666, Metrics.Load("f1").Compute(YPred, YTrue, Kw(("average", "weighted")))["f1"], 1e-15);
        Assert.Equal([0.8, 0.0, 0.0], Metrics.Load("f1").Compute(YPred, YTrue, Kw(("average", "none"))).GetVector("f1"));
        Assert.Equal(0.2222222222222222, Metrics.Load("precision").Compute(YPred, YTrue, Kw(("average", "macro")))["precision"], 1e-15);
        Assert.Equal([2.0 / 3, 0.0, 0.0], Metrics.Load("precision").Compute(YPred, YTrue, Kw(("average", "none"))).GetVector("precision"));
        Assert.Equal(0.3333333333333333, Metrics.Load("recall").Compute(YPred, YTrue, Kw(("average", "macro")))["recall"], 1e-15);
        Assert.Equal([1.0, 0.0, 0.0], Metrics.Load("recall").Compute(YPred, YTrue, Kw(("average", "none"))).GetVector("recall"));
    }

    [Fact] // accuracy_score docstring: y_pred = [0, 2, 1, 3], y_true = [0, 1, 2, 3] -> 0.5, normalize=False -> 2
    public void Sklearn_docstring_accuracy()
    {
        var acc = Metrics.Load("accuracy");
        Assert.Equal(0.5, acc.Compute([0, 2, 1, 3], new[] { 0, 1, 2, 3 })["accuracy"]);
        Assert.Equal(2.0, acc.Compute([0, 2, 1, 3], new[] { 0, 1, 2, 3 }, Kw(("normalize", false)))["accuracy"]);
        // sample_weight (hand): correct at 0 and 3 with weights 1 and 4 -> (1 + 4) / (1 + 2 + 3 + 4) = 0.5; unnormalised 5.
        Assert.Equal(0.5, acc.Compute([0, 2, 1, 3], new[] { 0, 1, 2, 3 }, Kw(("sample_weight", new[] { 1.0, 2, 3, 4 })))["accuracy"]);
        Assert.Equal(5.0, acc.Compute([0, 2, 1, 3], new[] { 0, 1, 2, 3 }, Kw(("sample_weight", new[] { 1.0, 2, 3, 4 }), ("normalize", false)))["accuracy"]);
    }

    [Fact] // matthews_corrcoef docstring: y_true = [+1, +1, +1, -1], y_pred = [+1, -1, +1, +1] -> -0.33...
    public void Sklearn_docstring_matthews()
    {
        // Hand: C = [[0, 1], [1, 2]] (labels -1, 1); t = p = [1, 3]; correct 2; n 4;
        // cov_tp = 2*4 - (1 + 9) = -2; cov_pp = cov_tt = 16 - 10 = 6 -> -2 / 6.
        Assert.Equal(-1.0 / 3, Metrics.Load("matthews_correlation").Compute([1, -1, 1, 1], new[] { 1, 1, 1, -1 })["matthews_correlation"], 1e-15);
        // All predictions one class -> a zero variance -> 0.0 (scikit-learn's convention).
        Assert.Equal(0.0, Metrics.Load("matthews_correlation").Compute([1, 1, 1], new[] { 0, 1, 1 })["matthews_correlation"]);
    }

    [Fact] // confusion_matrix docstring examples
    public void Sklearn_docstring_confusion_matrix()
    {
        var cm = Metrics.Load("confusion_matrix");
        var m = cm.Compute([0, 0, 2, 2, 0, 2], new[] { 2, 0, 2, 2, 0, 1 }).GetMatrix("confusion_matrix");
        Assert.Equal(new[] { new[] { 2.0, 0, 0 }, new[] { 0.0, 0, 1 }, new[] { 1.0, 0, 2 } }, m.Select(r => r.ToArray()));
        var s = cm.Compute(["ant", "ant", "cat", "cat", "ant", "cat"], new[] { "cat", "ant", "cat", "cat", "ant", "bird" },
            Kw(("labels", new[] { "ant", "bird", "cat" }))).GetMatrix("confusion_matrix");
        Assert.Equal(new[] { new[] { 2.0, 0, 0 }, new[] { 0.0, 0, 1 }, new[] { 1.0, 0, 2 } }, s.Select(r => r.ToArray()));
        // tn, fp, fn, tp = confusion_matrix([0, 1, 0, 1], [1, 1, 1, 0]).ravel() -> (0, 2, 1, 1)
        var b = cm.Compute([1, 1, 1, 0], new[] { 0, 1, 0, 1 }).GetMatrix("confusion_matrix");
        Assert.Equal(new[] { 0.0, 2, 1, 1 }, b.SelectMany(r => r));
        // normalize="true" (hand): rows divided by their sums: [[0, 1], [0.5, 0.5]]
        var n = cm.Compute([1, 1, 1, 0], new[] { 0, 1, 0, 1 }, Kw(("normalize", "true"))).GetMatrix("confusion_matrix");
        Assert.Equal(new[] { 0.0, 1, 0.5, 0.5 }, n.SelectMany(r => r));
    }

    [Fact] // HF evaluate metrics/roc_auc/README.md binary example -> 0.78 (hand: 7 of 9 positive/negative pairs ordered -> 7/9)
    public void Roc_auc_binary()
    {
        var r = new Peft.Evaluate.Classification.RocAucMetric().Compute(new[] { 0.5, 0.2, 0.99, 0.3, 0.1, 0.7 }, new[] { 1, 0, 1, 1, 0, 0 });
        Assert.Equal(7.0 / 9, r["roc_auc"], 1e-15);
        // Ties count half (hand): scores [0.5, 0.5], labels [0, 1] -> one tied pair -> 0.5.
        Assert.Equal(0.5, Metrics.Load("roc_auc").Compute([0.5, 0.5], new[] { 0.0, 1.0 })["roc_auc"], 1e-15);
        Assert.Throws<ArgumentException>(() => Metrics.Load("roc_auc").Compute([0.1, 0.2], new[] { 1.0, 1.0 }));
        // max_fpr (McClish standardisation), by hand: labels [0, 1, 0, 1], scores [0.1, 0.2, 0.3, 0.4] give ROC points
        // (0,0) (0,.5) (.5,.5) (.5,1) (1,1): full AUC = .5*.5 + .5*1 = 0.75. Up to fpr .5 the area is .25;
        // min area .5*.5^2 = .125, max area .5 -> .5 * (1 + (.25 - .125) / (.5 - .125)) = 2/3.
        var roc = new Peft.Evaluate.Classification.RocAucMetric();
        Assert.Equal(0.75, roc.Compute(new[] { 0.1, 0.2, 0.3, 0.4 }, new[] { 0, 1, 0, 1 })["roc_auc"], 1e-15);
        Assert.Equal(2.0 / 3, roc.Compute(new[] { 0.1, 0.2, 0.3, 0.4 }, new[] { 0, 1, 0, 1 }, Kw(("max_fpr", 0.5)))["roc_auc"], 1e-15);
    }

    [Fact]
    public void Binary_average_pos_label_and_labels()
    {
        // refs [0, 1, 1, 0], preds [0, 1, 0, 1]: for pos_label 1 tp 1, predicted 2, true 2 -> P = R = F = 0.5.
        // For pos_label 0: tp 1 (index 0), predicted 2, true 2 -> 0.5 as well; with refs [0,0,1,1] preds [0,0,0,1]:
        // pos 1: tp 1, pred 1, true 2 -> P 1, R 0.5, F 2/3; pos 0: tp 2, pred 3, true 2 -> P 2/3, R 1, F 0.8.
        int[] refs = [0, 0, 1, 1], preds = [0, 0, 0, 1];
        Assert.Equal(2.0 / 3, Metrics.Load("f1").Compute(preds, refs)["f1"], 1e-15);
        Assert.Equal(0.8, Metrics.Load("f1").Compute(preds, refs, Kw(("pos_label", 0)))["f1"], 1e-15);
        // labels=[1] with macro -> only class 1 -> F 2/3 (a single label gives a scalar, as HF's float(score)).
        Assert.Equal(2.0 / 3, Metrics.Load("f1").Compute(preds, refs, Kw(("average", "macro"), ("labels", new[] { 1 })))["f1"], 1e-15);
        // labels=[1, 2] with macro: class 2 never occurs -> F for it is 0 (zero_division) -> mean (2/3 + 0) / 2 = 1/3, with a warning.
        var withAbsent = Metrics.Load("f1").Compute(preds, refs, Kw(("average", "macro"), ("labels", new[] { 1, 2 })));
        Assert.Equal(1.0 / 3, withAbsent["f1"], 1e-15);
        Assert.Contains(withAbsent.Warnings, w => w.StartsWith("F-score is ill-defined and being set to 0.0 in labels with no true nor predicted samples."));
        // pos_label ignored (warning) when average != 'binary'
        var ignored = Metrics.Load("f1").Compute(preds, refs, Kw(("average", "macro"), ("pos_label", 0)));
        Assert.Contains(ignored.Warnings, w => w.StartsWith("Note that pos_label (set to 0) is ignored when average != 'binary' (got 'macro')."));
    }

    [Fact]
    public void Errors_match_sklearn()
    {
        var e1 = Assert.Throws<ArgumentException>(() => Metrics.Load("f1").Compute([0, 1, 2], new[] { 0, 1, 2 }));
        Assert.Contains("Target is multiclass but average='binary'", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => Metrics.Load("f1").Compute(["a", "b"], new[] { "a", "b" }));
        Assert.Contains("pos_label=1 is not a valid label. It should be one of ['a', 'b']", e2.Message);
        var e3 = Assert.Throws<ArgumentException>(() => Metrics.Load("f1").Compute([0, 1], new[] { 0, 1 }, Kw(("average", "mean"))));
        Assert.Contains("average has to be one of", e3.Message);
        var e4 = Assert.Throws<ArgumentException>(() => Metrics.Load("f1").Compute([0, 1], new[] { 0, 1 }, Kw(("avg", "macro"))));
        Assert.Contains("unexpected keyword argument 'avg'", e4.Message);
    }

    [Fact]
    public void Class_never_predicted_zero_division()
    {
        // refs [0, 1, 2, 2], preds [0, 1, 1, 1]: class 2 never predicted -> its precision is 0/0.
        // Per class precision: 0 -> 1/1; 1 -> 1/3; 2 -> zero_division. Macro with "warn" (0): (1 + 1/3 + 0) / 3 = 4/9.
        int[] refs = [0, 1, 2, 2], preds = [0, 1, 1, 1];
        var warn = Metrics.Load("precision").Compute(preds, refs, Kw(("average", "macro")));
        Assert.Equal(4.0 / 9, warn["precision"], 1e-15);
        Assert.Equal(["Precision is ill-defined and being set to 0.0 in labels with no predicted samples. Use `zero_division` parameter to control this behavior."], warn.Warnings);
        // zero_division=1 -> (1 + 1/3 + 1) / 3 = 7/9, no warning.
        var one = Metrics.Load("precision").Compute(preds, refs, Kw(("average", "macro"), ("zero_division", 1)));
        Assert.Equal(7.0 / 9, one["precision"], 1e-15);
        Assert.Empty(one.Warnings);
        // zero_division=NaN -> the NaN class is left out of the mean: (1 + 1/3) / 2 = 2/3.
        Assert.Equal(2.0 / 3, Metrics.Load("precision").Compute(preds, refs, Kw(("average", "macro"), ("zero_division", double.NaN)))["precision"], 1e-15);
        // Recall has no 0/0 here (every class occurs in refs): 0 -> 1, 1 -> 1, 2 -> 0 -> macro 2/3, no warning.
        var rec = Metrics.Load("recall").Compute(preds, refs, Kw(("average", "macro")));
        Assert.Equal(2.0 / 3, rec["recall"], 1e-15);
        Assert.Empty(rec.Warnings);
        // F1 of class 2: 2*0 / (2 + 0) = 0 without 0/0 (denominator = true + predicted = 2) -> no warning.
        Assert.Empty(Metrics.Load("f1").Compute(preds, refs, Kw(("average", "macro"))).Warnings);
    }

    [Fact]
    public void All_negative_binary_case()
    {
        // f1_score([0]*6, [0]*6): pos_label 1 absent from both -> labels [1], tp = predicted = true = 0 -> 0/0.
        // sklearn: 0.0 with a warning by default; zero_division=1 -> 1.0 (the f1_score docstring's example).
        int[] zeros = [0, 0, 0, 0, 0, 0];
        var r = Metrics.Load("f1").Compute(zeros, zeros);
        Assert.Equal(0.0, r["f1"]);
        Assert.Single(r.Warnings);
        Assert.Equal(1.0, Metrics.Load("f1").Compute(zeros, zeros, Kw(("zero_division", 1.0)))["f1"]);
    }

    [Fact]
    public void Empty_inputs_follow_sklearn()
    {
        var none = Array.Empty<int>();
        Assert.True(double.IsNaN(Metrics.Load("accuracy").Compute(none, none)["accuracy"])); // mean of an empty array
        Assert.Equal(0.0, Metrics.Load("f1").Compute(none, none)["f1"]); // binary: labels [1], 0/0 -> 0.0 + warning
        Assert.True(double.IsNaN(Metrics.Load("f1").Compute(none, none, Kw(("average", "macro")))["f1"])); // no labels -> nan
        Assert.Equal(0.0, Metrics.Load("matthews_correlation").Compute(none, none)["matthews_correlation"]);
    }

    [Fact]
    public void Labels_may_be_strings_bools_or_mixed_numeric_types()
    {
        Assert.Equal(0.75, Metrics.Load("accuracy").Compute(new object[] { 1, 2.0, 3L, true }, new object[] { 1.0, 2, 3, 0 })["accuracy"]);
        // bools are 0/1: preds [T, T, F, F], refs [T, F, T, F], pos_label 1: tp 1, predicted 2, true 2 -> F = 0.5.
        Assert.Equal(0.5, Metrics.Load("f1").Compute([true, true, false, false], new[] { true, false, true, false })["f1"], 1e-15);
        Assert.Throws<ArgumentException>(() => Metrics.Load("accuracy").Compute(new object[] { 1, "a" }, new object[] { 1, "a" }));
    }
}
