using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// PEFT <c>PromptEncoder</c> (P-tuning v1): virtual-token embeddings reparameterised by <c>mlp_head</c>
/// (Linear(token_dim, h) → ReLU → Linear(h, h) → ReLU → Linear(h, token_dim)), or by a bidirectional <c>lstm_head</c>
/// followed by <c>mlp_head</c> (Linear(2h, 2h) → ReLU → Linear(2h, token_dim)). In inference mode only
/// <c>embedding</c> exists and it holds the saved encoder output. indices [B, N] → [B, N, token_dim].
/// </summary>
public sealed class PromptEncoder : BasePromptEncoder
{
    private readonly Embedding embedding;
    private readonly LSTM? lstm_head;
    private readonly Sequential? mlp_head;

    /// <summary>Builds the encoder for a prepared <paramref name="config"/> (sizes filled in) on <paramref name="device"/>.</summary>
    public PromptEncoder(PromptEncoderConfig config, Device device) : base(nameof(PromptEncoder))
    {
        ArgumentNullException.ThrowIfNull(config);
        int tokenDim = config.RequiredTokenDim;
        int hidden = config.EncoderHiddenSize ?? tokenDim;
        embedding = nn.Embedding(config.TotalVirtualTokens, tokenDim, device: device);
        if (!config.InferenceMode)
        {
            if (config.EncoderReparameterizationType == PromptEncoderReparameterizationType.Lstm)
            {
                lstm_head = nn.LSTM(tokenDim, hidden, numLayers: config.EncoderNumLayers, bidirectional: true, batchFirst: true,
                    dropout: config.EncoderDropout, device: device);
                mlp_head = nn.Sequential(
                    ("0", nn.Linear(hidden * 2, hidden * 2, device: device)), ("1", nn.ReLU()),
                    ("2", nn.Linear(hidden * 2, tokenDim, device: device)));
            }
            else
            {
                mlp_head = nn.Sequential(
                    ("0", nn.Linear(tokenDim, hidden, device: device)), ("1", nn.ReLU()),
                    ("2", nn.Linear(hidden, hidden, device: device)), ("3", nn.ReLU()),
                    ("4", nn.Linear(hidden, tokenDim, device: device)));
            }
        }
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Embedding Embedding => embedding;

    /// <summary>
    /// indices [B, N] → [B, N, token_dim] through the heads (PEFT <c>PromptEncoder.forward</c>); in inference mode (no
    /// heads) the embedding rows themselves.
    /// </summary>
    public override Tensor forward(Tensor indices)
    {
        var x = embedding.forward(indices);                          // [B, N, token_dim]
        if (mlp_head is null) return x;
        if (lstm_head is not null)
        {
            using var scope = NewDisposeScope();
            var (output, h, c) = lstm_head.forward(x);               // output [B, N, 2h]
            return mlp_head.forward(output).MoveToOuterDisposeScope();
        }
        return mlp_head.forward(x);
    }
}
