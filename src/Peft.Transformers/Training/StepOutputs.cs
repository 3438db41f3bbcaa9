using Peft.Core;

namespace Peft.Transformers;

/// <summary>What a training step keeps of a forward's <see cref="ModelOutput"/>.</summary>
internal static class StepOutputs
{
    /// <summary>
    /// Disposes every tensor of <paramref name="output"/> except its loss (and the cache, which the caller owns), before
    /// backward: as HF's <c>compute_loss</c> returns only <c>outputs["loss"]</c>, so the [B, T, V] logits are freed
    /// while backward runs (autograd keeps what it needs). Kept until the step's scope ended, a causal LM's logits
    /// added their size to the step's device peak (OPT-125m, bf16, 8 × 512 through the Trainer: +393 MiB,
    /// bench/README.md).
    /// </summary>
    public static void DropAllButLoss(ModelOutput output)
    {
        foreach (var t in new[] { output.Logits, output.LastHiddenState, output.PoolerOutput, output.StartLogits, output.EndLogits })
            if (t is not null && !ReferenceEquals(t, output.Loss)) t.Dispose();
        foreach (var t in output.HiddenStates ?? [])
            if (!ReferenceEquals(t, output.Loss)) t.Dispose();
    }
}
