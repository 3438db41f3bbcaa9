using Peft.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Predicts the token behind the mask token (HF <c>FillMaskPipeline</c>, e.g. <c>BertForMaskedLM</c>): the
/// <c>topK</c> most probable tokens with their probability, text and the completed sequence.
/// </summary>
/// <param name="model">A masked LM returning logits [1, T, V].</param>
/// <param name="tokenizer">Its tokenizer (must define a mask token).</param>
public sealed class FillMaskPipeline(nn.Module<ModelInput, ModelOutput> model, IPipelineTokenizer tokenizer)
    : Pipeline(model, tokenizer)
{
    /// <inheritdoc />
    public override string Task => "fill-mask";

    /// <summary>
    /// Fills the single mask token of <paramref name="text"/>; results best first (HF <c>top_k</c>, default 5).
    /// </summary>
    /// <exception cref="ArgumentException">The text holds no mask token or more than one.</exception>
    public IReadOnlyList<PipelineResult> Run(string text, int topK)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(topK, 1);
        int maskId = Tokenizer.MaskTokenId ?? throw new InvalidOperationException("the tokenizer has no mask token; fill-mask needs one");
        var enc = Tokenizer.Encode(text);
        var positions = enc.Ids.Select((id, i) => (id, i)).Where(x => x.id == maskId).Select(x => x.i).ToList();
        if (positions.Count != 1)
            throw new ArgumentException($"fill-mask expects exactly one mask token ({Tokenizer.IdToToken(maskId)}) in the input; found {positions.Count} in \"{text}\"", nameof(text));
        int pos = positions[0];
        using var scope = NewDisposeScope();
        var output = Forward(enc);
        var logits = output.Logits ?? throw new InvalidOperationException($"{Model.GetType().Name} returned no logits");
        var row = logits[0, pos].to_type(ScalarType.Float32).data<float>().ToArray();
        var probs = Softmax(row);
        var best = probs.Select((p, i) => (p, i)).OrderByDescending(x => x.p).Take(Math.Min(topK, probs.Length));
        var results = new List<PipelineResult>();
        foreach (var (p, id) in best)
        {
            var filled = enc.Ids.ToArray();
            filled[pos] = id;
            results.Add(new PipelineResult
            {
                Score = p,
                Token = id,
                TokenStr = Tokenizer.Decode([id], skipSpecialTokens: false),
                Sequence = Tokenizer.Decode(filled, skipSpecialTokens: true),
            });
        }
        return results;
    }

    /// <inheritdoc />
    protected override IReadOnlyList<PipelineResult> RunDefault(string input, GenerationConfig? generationConfig) => Run(input, topK: 5);
}
