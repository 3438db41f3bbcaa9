using Peft.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>How class scores are turned into probabilities (HF <c>ClassificationFunction</c>).</summary>
public enum ClassificationFunction
{
    /// <summary>HF's choice: sigmoid for multi-label problems or a single label, softmax otherwise.</summary>
    Default,
    /// <summary>Softmax over the classes.</summary>
    Softmax,
    /// <summary>Sigmoid per class.</summary>
    Sigmoid,
    /// <summary>Raw logits.</summary>
    None,
}

/// <summary>
/// Sequence classification (HF <c>TextClassificationPipeline</c>, alias "sentiment-analysis"): label names come from
/// the config's <c>id2label</c> (or "LABEL_i").
/// </summary>
/// <param name="model">A sequence-classification model returning logits [1, C].</param>
/// <param name="tokenizer">Its tokenizer.</param>
/// <param name="id2label">Class names by id (config <c>id2label</c>), or null.</param>
/// <param name="problemType">Config <c>problem_type</c> ("single_label_classification", "multi_label_classification", "regression"), or null.</param>
public sealed class TextClassificationPipeline(nn.Module<ModelInput, ModelOutput> model, IPipelineTokenizer tokenizer,
    IReadOnlyDictionary<int, string>? id2label = null, string? problemType = null) : Pipeline(model, tokenizer)
{
    /// <inheritdoc />
    public override string Task => "text-classification";

    /// <summary>Class names by id.</summary>
    public IReadOnlyDictionary<int, string>? Id2Label { get; } = id2label;

    /// <summary>
    /// Classifies <paramref name="text"/> (optionally a sentence pair with <paramref name="textPair"/>). Returns the
    /// <paramref name="topK"/> best labels with scores, best first (null = every label; HF <c>top_k</c>).
    /// </summary>
    public IReadOnlyList<PipelineResult> Run(string text, int? topK, ClassificationFunction functionToApply = ClassificationFunction.Default,
        string? textPair = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (topK is <= 0) throw new ArgumentOutOfRangeException(nameof(topK), topK, "top_k must be positive (or null for all labels)");
        using var scope = NewDisposeScope();
        var output = Forward(Tokenizer.Encode(text, textPair));
        var logits = output.Logits ?? throw new InvalidOperationException($"{Model.GetType().Name} returned no logits");
        var row = logits.reshape(-1).to_type(ScalarType.Float32).data<float>().ToArray();
        var fn = functionToApply;
        if (fn == ClassificationFunction.Default)
            fn = problemType == "multi_label_classification" || row.Length == 1 ? ClassificationFunction.Sigmoid : ClassificationFunction.Softmax;
        double[] scores = fn switch
        {
            ClassificationFunction.Softmax => Softmax(row),
            ClassificationFunction.Sigmoid => row.Select(x => 1.0 / (1.0 + Math.Exp(-x))).ToArray(),
            _ => row.Select(x => (double)x).ToArray(),
        };
        var ranked = scores.Select((s, i) => new PipelineResult { Label = LabelOf(Id2Label, i), Score = s })
            .OrderByDescending(r => r.Score!.Value).ToList();
        return topK is { } k ? ranked.Take(k).ToList() : ranked;
    }

    /// <inheritdoc />
    protected override IReadOnlyList<PipelineResult> RunDefault(string input, GenerationConfig? generationConfig) => Run(input, topK: 1);
}
