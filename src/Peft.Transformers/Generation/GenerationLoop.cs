using Peft.Core;
using TorchSharp;

namespace Peft.Transformers.Generation;

/// <summary>
/// The decoding loop shared by every causal model and by PEFT models (HF <c>GenerationMixin.generate</c>).
/// </summary>
public static class GenerationLoop
{
    /// <summary>
    /// Generates continuations of <paramref name="inputIds"/> [B, T] (left-padded when batched) and returns
    /// [B · NumReturnSequences, T + new] int64, as HF does. Placeholder until the generation issue lands.
    /// </summary>
    public static torch.Tensor Generate(torch.nn.Module<ModelInput, ModelOutput> model, torch.Tensor inputIds,
        torch.Tensor? attentionMask, GenerationConfig config, GenerationConfig? modelDefaults = null) =>
        throw new NotSupportedException("Generation is built by the generation issue (#6).");
}
