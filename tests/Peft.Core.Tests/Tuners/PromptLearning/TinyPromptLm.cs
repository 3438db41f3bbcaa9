using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners.PromptLearning;

/// <summary>
/// A two-layer toy causal LM implementing <see cref="IPreTrainedModel"/> (vocab 20, hidden 8, 4 query heads and 2
/// key/value heads of 2) that records the last input it received, so tests can check what a prompt-learning tuner hands
/// to the model. Logits = head(embeds + mean of the cached keys per layer); positions are not used.
/// </summary>
internal sealed class TinyPromptLm : nn.Module<ModelInput, ModelOutput>, IPreTrainedModel
{
    private readonly Embedding embed_tokens;
    private readonly Linear lm_head;

    public TinyPromptLm() : base(nameof(TinyPromptLm))
    {
        embed_tokens = nn.Embedding(20, 8);
        lm_head = nn.Linear(8, 20);
        RegisterComponents();
    }

    /// <summary>The input of the last forward call.</summary>
    public ModelInput? LastInput { get; private set; }

    /// <summary>The cache lengths per layer seen by the last forward call (before it appended).</summary>
    public long[] PastLengths { get; private set; } = [];

    public string ModelType => "tiny";
    public string? NameOrPath => "tiny/prompt-lm";
    public TransformerDimensions Dimensions => new(NumLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2, HiddenSize: 8, HeadDim: 2);
    public Embedding GetInputEmbeddings() => embed_tokens;
    public void SavePretrained(string dir) => throw new NotSupportedException();

    public override ModelOutput forward(ModelInput input)
    {
        LastInput = input;
        var h = input.InputsEmbeds ?? embed_tokens.forward(input.InputIds!);     // [B, T, 8]
        var cache = input.PastKeyValues;
        PastLengths = cache is null ? [] : Enumerable.Range(0, cache.Count).Select(l => cache.GetSeqLength(l)).ToArray();
        if (cache is not null)
        {
            for (int l = 0; l < cache.Count; l++)
            {
                var (k, _) = cache[l]!.Value;                                    // [B, 2, P, 2]
                h = h + k.mean([1, 2, 3]).view(-1, 1, 1);
            }
        }
        var logits = lm_head.forward(h);
        Tensor? loss = null;
        if (input.Labels is { } labels)
            loss = nn.functional.cross_entropy(logits.reshape(-1, 20), labels.reshape(-1), ignore_index: -100);
        return new ModelOutput { Logits = logits, Loss = loss, PastKeyValues = cache };
    }
}
