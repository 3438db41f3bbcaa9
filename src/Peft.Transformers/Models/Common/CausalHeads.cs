using Peft.Core;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Models;

/// <summary>Shared pieces of the heads on top of decoder-only backbones.</summary>
internal static class CausalHeads
{
    /// <summary>
    /// HF's sequence-classification pooling for causal models: the logits of the last non-pad token of each row
    /// (<c>(arange(T) · (input_ids ≠ pad)).argmax(-1)</c>), or of the last position when no pad id is configured.
    /// logits [B, T, C] → [B, C].
    /// </summary>
    public static Tensor PoolLastNonPad(Tensor logits, Tensor? inputIds, int? padTokenId, string model)
    {
        long b = logits.shape[0], t = logits.shape[1];
        Tensor idx;
        if (padTokenId is null)
        {
            if (b != 1) throw new InvalidOperationException($"{model}: cannot handle batch sizes > 1 if no padding token is defined (config.pad_token_id is null).");
            idx = full([b], HeldScalars.Of(t - 1), dtype: ScalarType.Int64, device: logits.device);
        }
        else if (inputIds is null)
        {
            idx = full([b], HeldScalars.Of(t - 1), dtype: ScalarType.Int64, device: logits.device);
        }
        else
        {
            var nonPad = inputIds.to(logits.device).ne(HeldScalars.Of(padTokenId.Value)).to_type(ScalarType.Int64);
            var positions = arange(HeldScalars.Of(t), dtype: ScalarType.Int64, device: logits.device).unsqueeze(0);
            idx = (positions * nonPad).argmax(-1);
        }
        var rows = arange(HeldScalars.Of(b), dtype: ScalarType.Int64, device: logits.device);
        return logits.index([rows, idx]);   // [B, C]
    }

    /// <summary>
    /// The hidden states the LM head projects: all of <paramref name="hidden"/> [B, T, H], or its last
    /// <see cref="ModelInput.LogitsToKeep"/> positions [B, n, H] (HF <c>hidden_states[:, -logits_to_keep:, :]</c>).
    /// </summary>
    public static Tensor KeptHidden(Tensor hidden, ModelInput input)
    {
        int n = input.LogitsToKeep;
        if (n == 0) return hidden;
        if (n < 0) throw new ArgumentOutOfRangeException(nameof(input), n, "ModelInput.LogitsToKeep must be >= 0 (0 = every position).");
        if (input.Labels is not null) throw new ArgumentException($"ModelInput.LogitsToKeep = {n} with Labels: the loss needs the logits of every position.");
        long t = hidden.shape[1];
        return n >= t ? hidden : hidden.narrow(1, t - n, n);                   // [B, n, H]
    }

    /// <summary>
    /// <see cref="KeptHidden"/>, and when a loss will be back-propagated through the LM head (labels given, grad
    /// enabled, the hidden states require grad) the hidden states pass a <see cref="GradientReleaseFunction"/> whose
    /// handoff goes to <see cref="LmForward"/>: the loss's [B·T, V] gradient is then released right after the head's
    /// backward instead of at the end of the caller's dispose scope.
    /// </summary>
    public static (Tensor Hidden, GradientHandoff? Handoff) HeadInput(Tensor hidden, ModelInput input)
    {
        var kept = KeptHidden(hidden, input);
        if (input.Labels is null || !is_grad_enabled() || !kept.requires_grad) return (kept, null);
        var handoff = new GradientHandoff();
        return (GradientReleaseFunction.Apply(kept, handoff), handoff);
    }

    /// <summary>
    /// HF <c>...ForCausalLM.forward</c> after the backbone: the LM head over <see cref="HeadInput"/>'s hidden states
    /// (on the head's device), the loss (<see cref="ModelOps.CausalLmLoss"/>, its gradient released through the
    /// handoff) when labels are given, and the backbone outputs passed through (moved to the caller's scope).
    /// logits [B, T or LogitsToKeep, vocab].
    /// </summary>
    public static ModelOutput LmForward(ModelOutput backbone, nn.Module<Tensor, Tensor> lmHead, ModelInput input)
    {
        var (hidden, handoff) = HeadInput(backbone.LastHiddenState!, input);
        var logits = lmHead.forward(BackbonePass.ToDeviceOf(lmHead, hidden));
        var loss = input.Labels is null ? null : ModelOps.CausalLmLoss(logits, input.Labels, handoff);
        return ModelOps.MoveOut(backbone with { Logits = logits, Loss = loss });
    }

    /// <summary>
    /// HF <c>get_output_embeddings()</c> of a causal LM whose head is <paramref name="lmHead"/>: the untied
    /// <c>Linear</c>, or null when the head is tied to the input embeddings (resizing those
    /// resizes it). A head replaced by an adapter wrapper fails, naming <paramref name="model"/>.
    /// </summary>
    public static TorchSharp.Modules.Linear? OutputEmbeddings(nn.Module<Tensor, Tensor> lmHead, string model) => lmHead switch
    {
        TiedLinear => null,
        TorchSharp.Modules.Linear l => l,
        _ => throw new InvalidOperationException($"{model}: lm_head was replaced by {lmHead.GetType().Name}; resize the vocabulary before wrapping it."),
    };

    /// <summary>Builds the output of a sequence-classification head.</summary>
    public static ModelOutput ClsOutput(ModelOutput backbone, Tensor pooledLogits, Tensor? labels, PretrainedConfig config)
    {
        var loss = labels is null ? null : ModelOps.ClassificationLoss(pooledLogits, labels, config.NumLabels, config.ProblemType);
        return ModelOps.MoveOut(backbone with { Logits = pooledLogits, Loss = loss });
    }

    /// <summary>
    /// Builds the output of a token-classification head: logits [B, T, num_labels], and HF's cross-entropy over the
    /// tokens (−100 ignored) when labels [B, T] are given.
    /// </summary>
    public static ModelOutput TokenOutput(ModelOutput backbone, Tensor logits, Tensor? labels)
    {
        var loss = labels is null ? null : ModelOps.TokenLoss(logits, labels);
        return ModelOps.MoveOut(backbone with { Logits = logits, Loss = loss });
    }

    /// <summary>Checks that exactly one of input_ids / inputs_embeds is given and returns (B, T).</summary>
    public static (long B, long T) BatchShape(ModelInput input, string model)
    {
        ArgumentNullException.ThrowIfNull(input);
        if ((input.InputIds is null) == (input.InputsEmbeds is null))
            throw new ArgumentException($"{model}: specify exactly one of InputIds and InputsEmbeds.");
        var x = input.InputIds ?? input.InputsEmbeds!;
        if (input.InputIds is not null && x.dim() != 2) throw new ArgumentException($"{model}: InputIds must be [B, T], got [{string.Join(", ", x.shape)}].");
        return (x.shape[0], x.shape[1]);
    }
}
