using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// PEFT <c>PrefixEncoder</c>: prefix indices [B, N] → flattened per-layer keys and values [B, N, num_layers · 2 ·
/// token_dim]. Without projection (or in inference mode) <c>embedding</c> is that table itself; with
/// <c>prefix_projection</c> while training, <c>embedding</c> [N, token_dim] feeds <c>transform</c> (Linear(token_dim, h)
/// → tanh → Linear(h, num_layers · 2 · token_dim)).
/// </summary>
public sealed class PrefixEncoder : BasePromptEncoder
{
    private readonly Embedding embedding;
    private readonly Sequential? transform;

    /// <summary>Builds the encoder for a prepared <paramref name="config"/> (sizes filled in) on <paramref name="device"/>.</summary>
    public PrefixEncoder(PrefixTuningConfig config, Device device) : base(nameof(PrefixEncoder))
    {
        ArgumentNullException.ThrowIfNull(config);
        int tokenDim = config.RequiredTokenDim;
        int layers = config.NumLayers ?? throw new InvalidOperationException("PREFIX_TUNING: num_layers is not set (add the adapter to a model first).");
        int width = layers * 2 * tokenDim;
        bool zero = config.InitWeights == "zero";
        if (config.PrefixProjection && !config.InferenceMode)
        {
            int hidden = config.EncoderHiddenSize ?? tokenDim;
            embedding = nn.Embedding(config.NumVirtualTokens, tokenDim, device: device);
            var last = nn.Linear(hidden, width, device: device);
            transform = nn.Sequential(("0", nn.Linear(tokenDim, hidden, device: device)), ("1", nn.Tanh()), ("2", last));
            if (zero)
            {
                using var _ = no_grad();
                last.weight!.zero_();
                last.bias!.zero_();
            }
        }
        else
        {
            embedding = nn.Embedding(config.NumVirtualTokens, width, device: device);
            if (zero)
            {
                using var _ = no_grad();
                embedding.weight!.zero_();
            }
        }
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Embedding Embedding => embedding;

    /// <summary>Whether the prefix goes through <c>transform</c> (projection while training).</summary>
    public bool Projects => transform is not null;

    /// <summary>prefix indices [B, N] → [B, N, num_layers · 2 · token_dim].</summary>
    public override Tensor forward(Tensor indices)
    {
        var x = embedding.forward(indices);
        return transform is null ? x : transform.forward(x);
    }

    /// <summary>
    /// Copies a saved flattened prefix into <c>embedding</c>; with a projection there is nothing to copy it into (PEFT
    /// raises the same), so load such adapters in inference mode.
    /// </summary>
    public override void LoadPromptEmbeddings(Tensor value, string key)
    {
        if (transform is not null)
            throw new InvalidDataException($"adapter tensor '{key}': cannot load a flattened prefix into a prefix_projection encoder that is training (load the adapter with isTrainable = false).");
        base.LoadPromptEmbeddings(value, key);
    }
}
