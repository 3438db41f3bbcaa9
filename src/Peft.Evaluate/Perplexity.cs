namespace Peft.Evaluate;

/// <summary>
/// What the <c>perplexity</c> metric needs from a causal language model, without any tensor library: for each text,
/// the natural-log probability the model assigns to every predicted token given the tokens before it. The adapter from
/// a Peft.Transformers model implements it (tokenise without special tokens, optionally prepend BOS, truncate to
/// <c>maxLength</c>, run the model, <c>log_softmax</c> of the logits at position t-1 gathered at token t for every t ≥ 1
/// where the attention mask is 1 — exactly the tokens HF's perplexity metric counts).
/// </summary>
public interface ICausalLMScorer
{
    /// <summary>
    /// Per-token log-probabilities (natural log, ≤ 0), one list per text, in text order.
    /// </summary>
    /// <param name="texts">The texts to score.</param>
    /// <param name="addStartToken">Prepend the model's BOS token so the first real token is scored too (HF default true).</param>
    /// <param name="maxLength">Truncate each text to this many tokens including the BOS token (null: no truncation).</param>
    /// <param name="batchSize">How many texts to run through the model at once (HF default 16).</param>
    IReadOnlyList<IReadOnlyList<double>> TokenLogProbabilities(IReadOnlyList<string> texts, bool addStartToken, int? maxLength, int batchSize);
}

/// <summary>
/// HF <c>perplexity</c>: per text, <c>exp(-mean log p(token))</c> over the scored tokens; <c>mean_perplexity</c> is the
/// plain mean of the per-text perplexities (not a corpus perplexity), as in HF. Predictions are the texts; references are
/// not used (pass an empty list). Kwargs: <c>model</c> (an <see cref="ICausalLMScorer"/>, required), <c>batch_size</c> (16),
/// <c>add_start_token</c> (true), <c>max_length</c>. Result: scalar <c>mean_perplexity</c>, vector <c>perplexities</c>.
/// </summary>
public sealed class PerplexityMetric() : Metric("perplexity")
{
    /// <inheritdoc/>
    public override IReadOnlyCollection<string> KwargNames { get; } = ["model", "model_id", "batch_size", "add_start_token", "max_length", "device"];

    /// <inheritdoc/>
    protected override bool NeedsReferences => false;

    /// <summary>Computes perplexities of <paramref name="texts"/> under <paramref name="model"/>.</summary>
    public MetricResult Compute(IReadOnlyList<string> texts, ICausalLMScorer model, int batchSize = 16, bool addStartToken = true, int? maxLength = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentNullException.ThrowIfNull(model);
        return FromLogProbabilities(model.TokenLogProbabilities(texts, addStartToken, maxLength, batchSize), texts.Count, addStartToken);
    }

    /// <summary>The metric from per-token log-probabilities (one list per text).</summary>
    public static MetricResult FromLogProbabilities(IReadOnlyList<IReadOnlyList<double>> logProbabilities, int expectedTexts, bool addStartToken = true)
    {
        if (logProbabilities.Count != expectedTexts)
            throw new InvalidOperationException($"perplexity: the scorer returned {logProbabilities.Count} results for {expectedTexts} texts.");
        var ppl = new double[logProbabilities.Count];
        for (int i = 0; i < ppl.Length; i++)
        {
            var lp = logProbabilities[i];
            if (lp.Count == 0)
                throw new ArgumentException(addStartToken
                    ? $"perplexity: text {i} has no tokens. Each input text must be at least one token long."
                    : $"perplexity: text {i} is shorter than two tokens. When add_start_token=False, each input text must be at least two tokens long.");
            ppl[i] = Math.Exp(-lp.Sum() / lp.Count);
        }
        return new MetricResult().SetVector("perplexities", ppl).Set("mean_perplexity", ppl.Length == 0 ? double.NaN : ppl.Average());
    }

    private protected override MetricResult ComputeCore(IReadOnlyList<object?> predictions, IReadOnlyList<object?> references, Kwargs kw)
    {
        if (kw.Raw("model") is not ICausalLMScorer model)
            throw new ArgumentException(kw.Has("model_id")
                ? "perplexity: 'model_id' (loading a model by name) is not available in the torch-free Peft.Evaluate; pass kwargs[\"model\"] = an ICausalLMScorer (the adapter over a Peft.Transformers model)."
                : $"perplexity: kwargs[\"model\"] must be an ICausalLMScorer, got {Kwargs.Describe(kw.Raw("model"))}.", "model");
        var texts = predictions.Select((x, i) => AsText(x, i)).ToList();
        int batch = kw.GetInt("batch_size", 16);
        if (batch < 1) throw new ArgumentOutOfRangeException("batch_size", batch, "perplexity: batch_size must be >= 1.");
        int? maxLength = kw.Has("max_length") && !kw.IsNone("max_length") ? kw.GetInt("max_length", 0) : null;
        return Compute(texts, model, batch, kw.GetBool("add_start_token", true), maxLength);
    }
}
