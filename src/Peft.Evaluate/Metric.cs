using System.Collections;

namespace Peft.Evaluate;

/// <summary>
/// A metric, the equivalent of an HF <c>evaluate.EvaluationModule</c> from <c>evaluate.load(name)</c>.
/// Either call <c>Compute(predictions, references, kwargs)</c> once, or accumulate with <c>AddBatch</c>/<c>Add</c>
/// and then call <see cref="Compute(IReadOnlyDictionary{string, object}?)"/> (which, as in HF, empties the buffer).
/// Keyword arguments use HF's names (<c>"average"</c>, <c>"pos_label"</c>, <c>"tokenize"</c>, <c>"use_stemmer"</c>, ...);
/// an unknown name throws <see cref="ArgumentException"/>. Instances are not thread-safe.
/// </summary>
public abstract class Metric
{
    private readonly List<object?> _predictions = [];
    private readonly List<object?> _references = [];

    /// <summary>Creates a metric named as in HF (<c>evaluate.load(name)</c>).</summary>
    protected Metric(string name) => Name = name;

    /// <summary>The HF name (<c>"accuracy"</c>, <c>"sacrebleu"</c>, ...).</summary>
    public string Name { get; }

    /// <summary>The keyword arguments this metric accepts (HF's names).</summary>
    public abstract IReadOnlyCollection<string> KwargNames { get; }

    /// <summary>Whether the metric needs references (perplexity does not).</summary>
    protected virtual bool NeedsReferences => true;

    /// <summary>
    /// Computes the metric on one set of predictions and references (HF <c>metric.compute(predictions=..., references=...)</c>).
    /// Labels for classification metrics may be any numeric type, <see cref="bool"/> or <see cref="string"/>;
    /// text metrics take strings (one reference each). Throws <see cref="ArgumentException"/> naming both lengths when they differ.
    /// </summary>
    public MetricResult Compute<T>(IReadOnlyList<T> predictions, IReadOnlyList<T> references, IReadOnlyDictionary<string, object>? kwargs = null)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(references);
        return Run(Box(predictions), Box(references), kwargs);
    }

    /// <summary>
    /// Computes a text metric where each prediction has a list of references (HF <c>references=[[r1, r2], ...]</c>):
    /// <c>references[i]</c> holds the references of <c>predictions[i]</c>.
    /// </summary>
    public MetricResult Compute(IReadOnlyList<string> predictions, IReadOnlyList<IReadOnlyList<string>> references, IReadOnlyDictionary<string, object>? kwargs = null)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(references);
        return Run(Box(predictions), Box(references), kwargs);
    }

    /// <summary>Adds a batch to the buffer (HF <c>add_batch</c>).</summary>
    public void AddBatch<T>(IReadOnlyList<T> predictions, IReadOnlyList<T> references)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(references);
        CheckLengths(predictions.Count, references.Count);
        _predictions.AddRange(Box(predictions));
        _references.AddRange(Box(references));
    }

    /// <summary>Adds a batch of predictions with several references each to the buffer (HF <c>add_batch</c>).</summary>
    public void AddBatch(IReadOnlyList<string> predictions, IReadOnlyList<IReadOnlyList<string>> references)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(references);
        CheckLengths(predictions.Count, references.Count);
        _predictions.AddRange(predictions);
        _references.AddRange(references);
    }

    /// <summary>Adds one prediction and its reference to the buffer (HF <c>add</c>).</summary>
    public void Add<T>(T prediction, T reference)
    {
        _predictions.Add(prediction);
        _references.Add(reference);
    }

    /// <summary>Adds one prediction with its references to the buffer (HF <c>add</c>).</summary>
    public void Add(string prediction, IReadOnlyList<string> references)
    {
        _predictions.Add(prediction);
        _references.Add(references);
    }

    /// <summary>Number of buffered examples.</summary>
    public int BufferedCount => _predictions.Count;

    /// <summary>Computes the metric over everything added with <c>AddBatch</c>/<c>Add</c>, then empties the buffer (HF <c>compute()</c>).</summary>
    public MetricResult Compute(IReadOnlyDictionary<string, object>? kwargs = null)
    {
        var p = _predictions.ToList();
        var r = _references.ToList();
        _predictions.Clear();
        _references.Clear();
        return Run(p, r, kwargs);
    }

    internal MetricResult Run(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, IReadOnlyDictionary<string, object>? kwargs)
    {
        if (NeedsReferences || references.Count > 0) CheckLengths(predictions.Count, references.Count);
        return ComputeCore(predictions, references, new Kwargs(Name, kwargs, KwargNames));
    }

    /// <summary>The metric itself, on boxed inputs of equal length with validated keyword names.</summary>
    private protected abstract MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kwargs);

    private void CheckLengths(int predictions, int references)
    {
        if (predictions != references)
            throw new ArgumentException(
                $"Metric '{Name}': predictions and references must have the same length, got {predictions} predictions and {references} references.");
    }

    private static List<object?> Box<T>(IReadOnlyList<T> items)
    {
        var list = new List<object?>(items.Count);
        foreach (var x in items) list.Add(x);
        return list;
    }

    /// <inheritdoc/>
    public override string ToString() => $"Metric({Name})";

    // ---- helpers shared by text metrics ----

    /// <summary>A prediction that must be a string.</summary>
    private protected string AsText(object? value, int index, string what = "prediction") =>
        value as string ?? throw new ArgumentException($"Metric '{Name}': {what} {index} must be a string, got {Kwargs.Describe(value)}.");

    /// <summary>A reference given as one string or as a list of strings.</summary>
    private protected IReadOnlyList<string> AsReferences(object? value, int index)
    {
        switch (value)
        {
            case string s: return [s];
            case IEnumerable<string> list: return list.ToList();
            case IEnumerable e:
                return e.Cast<object?>().Select(x => x as string ?? throw new ArgumentException(
                    $"Metric '{Name}': reference {index} must be a string or a list of strings, got {Kwargs.Describe(value)}.")).ToList();
            default:
                throw new ArgumentException($"Metric '{Name}': reference {index} must be a string or a list of strings, got {Kwargs.Describe(value)}.");
        }
    }
}
