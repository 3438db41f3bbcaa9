using Peft.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Hidden states of every token (HF <c>FeatureExtractionPipeline</c>): the model's <c>LastHiddenState</c> [T, H]
/// (special tokens included, as HF).
/// </summary>
/// <param name="model">A base model (or any model returning <c>LastHiddenState</c>).</param>
/// <param name="tokenizer">Its tokenizer.</param>
public sealed class FeatureExtractionPipeline(nn.Module<ModelInput, ModelOutput> model, IPipelineTokenizer tokenizer)
    : Pipeline(model, tokenizer)
{
    /// <inheritdoc />
    public override string Task => "feature-extraction";

    /// <summary>Returns the hidden states of <paramref name="text"/>: [tokens][hidden].</summary>
    public float[][] Extract(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        using var scope = NewDisposeScope();
        var output = Forward(Tokenizer.Encode(text));
        var h = output.LastHiddenState ?? throw new InvalidOperationException($"{Model.GetType().Name} returned no LastHiddenState");
        var t = h[0].to_type(ScalarType.Float32).contiguous();
        int rows = (int)t.shape[0], cols = (int)t.shape[1];
        var flat = t.data<float>().ToArray();
        return Enumerable.Range(0, rows).Select(r => flat.AsSpan(r * cols, cols).ToArray()).ToArray();
    }

    /// <inheritdoc />
    protected override IReadOnlyList<PipelineResult> RunDefault(string input, GenerationConfig? generationConfig) =>
        [new PipelineResult { Features = Extract(input) }];
}
