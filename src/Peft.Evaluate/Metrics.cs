using Peft.Evaluate.Classification;
using Peft.Evaluate.Text;

namespace Peft.Evaluate;

/// <summary>
/// Entry point, as HF <c>evaluate.load</c> / <c>evaluate.combine</c>: <c>Metrics.Load("f1")</c> returns a fresh
/// <see cref="Metric"/>. Names: accuracy, precision, recall, f1, matthews_correlation, confusion_matrix, roc_auc,
/// sacrebleu, bleu, chrf, rouge, exact_match, squad, perplexity.
/// </summary>
public static class Metrics
{
    private static readonly Dictionary<string, Func<Metric>> Registry = new(StringComparer.Ordinal)
    {
        ["accuracy"] = () => new AccuracyMetric(),
        ["precision"] = () => new PrecisionMetric(),
        ["recall"] = () => new RecallMetric(),
        ["f1"] = () => new F1Metric(),
        ["matthews_correlation"] = () => new MatthewsCorrelationMetric(),
        ["confusion_matrix"] = () => new ConfusionMatrixMetric(),
        ["roc_auc"] = () => new RocAucMetric(),
        ["sacrebleu"] = () => new SacreBleuMetric(),
        ["bleu"] = () => new BleuMetric(),
        ["chrf"] = () => new ChrFMetric(),
        ["rouge"] = () => new RougeMetric(),
        ["exact_match"] = () => new ExactMatchMetric(),
        ["squad"] = () => new SquadMetric(),
        ["perplexity"] = () => new PerplexityMetric(),
    };

    /// <summary>The names <see cref="Load"/> knows.</summary>
    public static IReadOnlyCollection<string> Available => Registry.Keys;

    /// <summary>A new metric by its HF name (<c>evaluate.load(name)</c>); also accepts <c>"evaluate-metric/name"</c>.</summary>
    public static Metric Load(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var key = name.StartsWith("evaluate-metric/", StringComparison.Ordinal) ? name["evaluate-metric/".Length..] : name;
        return Registry.TryGetValue(key, out var make)
            ? make()
            : throw new ArgumentException($"Unknown metric '{name}'. Available: [{string.Join(", ", Registry.Keys)}].", nameof(name));
    }

    /// <summary>Several metrics computed together (<c>evaluate.combine(names)</c>).</summary>
    public static CombinedMetric Combine(params string[] names) => Combine(names, forcePrefix: false);

    /// <summary>Several metrics computed together; with <paramref name="forcePrefix"/> every key is prefixed with its metric's name.</summary>
    public static CombinedMetric Combine(IEnumerable<string> names, bool forcePrefix = false)
    {
        ArgumentNullException.ThrowIfNull(names);
        var metrics = names.Select(Load).ToList();
        if (metrics.Count == 0) throw new ArgumentException("Combine needs at least one metric name.", nameof(names));
        return new CombinedMetric(metrics, forcePrefix);
    }
}

/// <summary>
/// HF <c>CombinedEvaluations</c>: computes each metric on the same inputs and merges the results. A key produced by more
/// than one metric is prefixed <c>"{metric}_{key}"</c> (and <c>"{metric}_{i}_{key}"</c> when the same metric appears twice);
/// unlike HF, each metric receives only the keyword arguments it accepts (HF would raise for the others).
/// </summary>
public sealed class CombinedMetric : Metric
{
    private readonly IReadOnlyList<Metric> _metrics;
    private readonly bool _forcePrefix;

    internal CombinedMetric(IReadOnlyList<Metric> metrics, bool forcePrefix) : base(string.Join("+", metrics.Select(m => m.Name)))
    {
        _metrics = metrics;
        _forcePrefix = forcePrefix;
    }

    /// <summary>The combined metrics, in order.</summary>
    public IReadOnlyList<Metric> Members => _metrics;

    /// <inheritdoc/>
    public override IReadOnlyCollection<string> KwargNames => _metrics.SelectMany(m => m.KwargNames).Distinct().ToList();

    private protected override MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kw)
    {
        var results = new List<MetricResult>();
        foreach (var m in _metrics)
        {
            var own = new Dictionary<string, object>();
            foreach (var name in m.KwargNames)
                if (kw.Has(name)) own[name] = kw.Raw(name)!;
            results.Add(m.Run(predictions, references, own));
        }
        var duplicateKeys = results.SelectMany(r => r.AllKeys).GroupBy(k => k).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet();
        var duplicateNames = _metrics.GroupBy(m => m.Name).Where(g => g.Count() > 1).ToDictionary(g => g.Key, _ => 0);
        var merged = new MetricResult();
        for (int i = 0; i < results.Count; i++)
        {
            var name = _metrics[i].Name;
            int ordinal = duplicateNames.TryGetValue(name, out var c) ? c : -1;
            merged.Merge(results[i], k =>
                !duplicateKeys.Contains(k) && !_forcePrefix ? k
                : ordinal >= 0 ? $"{name}_{ordinal}_{k}"
                : $"{name}_{k}");
            if (ordinal >= 0) duplicateNames[name] = ordinal + 1;
        }
        return merged;
    }
}
