using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// The per-adapter module of a prompt-learning method (PEFT <c>BasePromptEncoder</c>): virtual-token indices
/// [B, N] (int64) → embeddings [B, N, W] (prompt tuning, P-tuning: W = token_dim; prefix tuning: W = num_layers · 2 ·
/// token_dim). Its <see cref="Embedding"/> holds what PEFT calls <c>embedding</c>; saved files hold
/// <c>prompt_embeddings</c>, which loading copies into <see cref="Embedding"/> (PEFT <c>_load_adapter_state_dict</c>).
/// </summary>
public abstract class BasePromptEncoder : nn.Module<Tensor, Tensor>
{
    /// <summary>Names the module (the state-dict keys come from the derived class's fields).</summary>
    protected BasePromptEncoder(string name) : base(name) { }

    /// <summary>The virtual-token embedding table (PEFT <c>embedding</c>), [total_virtual_tokens, W].</summary>
    public abstract Embedding Embedding { get; }

    /// <summary>
    /// Copies a saved <c>prompt_embeddings</c> tensor into <see cref="Embedding"/> (PEFT loads it with
    /// <c>embedding.load_state_dict(strict=True)</c>): the shapes must agree, else <see cref="InvalidDataException"/>
    /// naming <paramref name="key"/> and both shapes.
    /// </summary>
    public virtual void LoadPromptEmbeddings(Tensor value, string key)
    {
        ArgumentNullException.ThrowIfNull(value);
        var weight = Embedding.weight!;
        if (!weight.shape.SequenceEqual(value.shape))
            throw new InvalidDataException($"adapter tensor '{key}': shape [{string.Join(", ", value.shape)}] in the file does not fit the prompt encoder's embedding [{string.Join(", ", weight.shape)}].");
        using var _ = no_grad();
        weight.copy_(value.to(weight.dtype, weight.device));
    }
}
