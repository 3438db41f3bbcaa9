using System.Collections;

namespace Peft.Evaluate;

/// <summary>
/// What a metric returns: the scalar results as an <see cref="IReadOnlyDictionary{TKey,TValue}"/> of
/// <c>string → double</c> under Hugging Face evaluate's keys (<c>"accuracy"</c>, <c>"f1"</c>, <c>"score"</c>, <c>"bleu"</c>,
/// <c>"rouge1"</c>, ...), plus the non-scalar results that HF returns as lists or arrays:
/// <see cref="Vectors"/> (per-class scores with <c>average=None</c>, sacrebleu <c>counts</c>/<c>totals</c>/<c>precisions</c>,
/// per-sample ROUGE with <c>use_aggregator=False</c>, <c>perplexities</c>) and <see cref="Matrices"/>
/// (<c>confusion_matrix</c>, rows = true label, columns = predicted label). A key lives in exactly one of the three.
/// <see cref="Warnings"/> carries what the Python tool would have warned about (e.g. scikit-learn's
/// <c>UndefinedMetricWarning</c> when a class is never predicted and <c>zero_division="warn"</c>).
/// </summary>
public sealed class MetricResult : IReadOnlyDictionary<string, double>
{
    private readonly Dictionary<string, double> _scalars = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IReadOnlyList<double>> _vectors = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IReadOnlyList<IReadOnlyList<double>>> _matrices = new(StringComparer.Ordinal);
    private readonly List<string> _warnings = [];

    /// <summary>Non-scalar 1-D results (HF returns a list or a 1-D numpy array under that key).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<double>> Vectors => _vectors;

    /// <summary>2-D results, row-major (HF returns a 2-D numpy array under that key).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<IReadOnlyList<double>>> Matrices => _matrices;

    /// <summary>Warnings the reference tool would have emitted, in order.</summary>
    public IReadOnlyList<string> Warnings => _warnings;

    /// <summary>Adds or replaces a scalar result.</summary>
    public MetricResult Set(string key, double value) { _scalars[key] = value; return this; }

    /// <summary>Adds or replaces a vector result.</summary>
    public MetricResult SetVector(string key, IReadOnlyList<double> values) { _vectors[key] = values; return this; }

    /// <summary>Adds or replaces a matrix result (row-major).</summary>
    public MetricResult SetMatrix(string key, IReadOnlyList<IReadOnlyList<double>> rows) { _matrices[key] = rows; return this; }

    /// <summary>Records a warning.</summary>
    public MetricResult Warn(string message) { _warnings.Add(message); return this; }

    /// <summary>The vector under <paramref name="key"/>; throws <see cref="KeyNotFoundException"/> naming the known keys.</summary>
    public IReadOnlyList<double> GetVector(string key) =>
        _vectors.TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"Metric result has no vector '{key}'. Vectors: [{string.Join(", ", _vectors.Keys)}]; scalars: [{string.Join(", ", _scalars.Keys)}].");

    /// <summary>The matrix under <paramref name="key"/>; throws <see cref="KeyNotFoundException"/> naming the known keys.</summary>
    public IReadOnlyList<IReadOnlyList<double>> GetMatrix(string key) =>
        _matrices.TryGetValue(key, out var m) ? m : throw new KeyNotFoundException($"Metric result has no matrix '{key}'. Matrices: [{string.Join(", ", _matrices.Keys)}].");

    /// <summary>Copies every entry of <paramref name="other"/> into this result, renaming keys with <paramref name="rename"/>.</summary>
    internal void Merge(MetricResult other, Func<string, string> rename)
    {
        foreach (var (k, v) in other._scalars) _scalars[rename(k)] = v;
        foreach (var (k, v) in other._vectors) _vectors[rename(k)] = v;
        foreach (var (k, v) in other._matrices) _matrices[rename(k)] = v;
        _warnings.AddRange(other._warnings);
    }

    /// <summary>Every key of every kind (scalars, vectors, matrices).</summary>
    internal IEnumerable<string> AllKeys => _scalars.Keys.Concat(_vectors.Keys).Concat(_matrices.Keys);

    /// <inheritdoc/>
    public double this[string key] => _scalars.TryGetValue(key, out var v)
        ? v
        : throw new KeyNotFoundException(_vectors.ContainsKey(key) || _matrices.ContainsKey(key)
            ? $"'{key}' is not a scalar result: read it with GetVector(\"{key}\") or GetMatrix(\"{key}\")."
            : $"Metric result has no key '{key}'. Scalars: [{string.Join(", ", _scalars.Keys)}].");

    /// <inheritdoc/>
    public IEnumerable<string> Keys => _scalars.Keys;

    /// <inheritdoc/>
    public IEnumerable<double> Values => _scalars.Values;

    /// <inheritdoc/>
    public int Count => _scalars.Count;

    /// <inheritdoc/>
    public bool ContainsKey(string key) => _scalars.ContainsKey(key);

    /// <inheritdoc/>
    public bool TryGetValue(string key, out double value) => _scalars.TryGetValue(key, out value);

    /// <inheritdoc/>
    public IEnumerator<KeyValuePair<string, double>> GetEnumerator() => _scalars.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>A short text such as <c>{accuracy: 0.64}</c>.</summary>
    public override string ToString()
    {
        var parts = _scalars.Select(kv => $"{kv.Key}: {kv.Value.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}")
            .Concat(_vectors.Select(kv => $"{kv.Key}: [{string.Join(", ", kv.Value.Select(x => x.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}]"))
            .Concat(_matrices.Select(kv => $"{kv.Key}: [{kv.Value.Count}x{(kv.Value.Count > 0 ? kv.Value[0].Count : 0)}]"));
        return "{" + string.Join(", ", parts) + "}";
    }
}
