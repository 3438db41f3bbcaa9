using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// PEFT <c>PromptEmbedding</c>: one learned vector per virtual token. indices [B, N] → [B, N, token_dim]. The table is
/// float32; with TEXT / SAMPLE_VOCAB init (while training) it starts as a copy of the model's word embeddings of the
/// chosen ids.
/// </summary>
public sealed class PromptEmbedding : BasePromptEncoder
{
    private readonly Embedding embedding;

    /// <summary>Builds the table for <paramref name="config"/> (sizes filled in); <paramref name="initIds"/> are the word ids of a TEXT / SAMPLE_VOCAB init, or null.</summary>
    /// <param name="config">The prepared config.</param>
    /// <param name="wordEmbeddings">The model's token embedding (PEFT <c>word_embeddings</c>), read for the init only.</param>
    /// <param name="initIds">total_virtual_tokens word ids whose embeddings start the prompt, or null for N(0, 1).</param>
    public PromptEmbedding(PromptTuningConfig config, Embedding wordEmbeddings, long[]? initIds) : base(nameof(PromptEmbedding))
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(wordEmbeddings);
        var table = wordEmbeddings.weight!;
        embedding = nn.Embedding(config.TotalVirtualTokens, config.RequiredTokenDim, device: table.device);
        if (initIds is not null)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var ids = tensor(initIds, dtype: ScalarType.Int64, device: table.device);
            embedding.weight!.copy_(wordEmbeddings.forward(ids).to(ScalarType.Float32));   // [N, token_dim]
        }
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Embedding Embedding => embedding;

    /// <summary>indices [B, N] → [B, N, token_dim].</summary>
    public override Tensor forward(Tensor indices) => embedding.forward(indices);
}
