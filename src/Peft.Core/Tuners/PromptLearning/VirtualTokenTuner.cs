using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// Prompt learning by prepending virtual-token embeddings (prompt tuning, P-tuning), as PEFT's
/// <c>PeftModelForCausalLM.forward</c> / <c>PeftModelForSequenceClassification.forward</c> and
/// <c>prepare_inputs_for_generation</c> do: the word embeddings of the input get the encoder output in front
/// ([B, N + T, H]), the attention mask N ones, causal-LM labels N × −100; position ids are dropped (the model derives
/// them from the longer sequence); token type ids are dropped for causal LM and extended with N zeros for sequence
/// classification. During generation the virtual tokens go in at the first step only; later steps (the cache then
/// holds them) only extend the mask.
/// </summary>
public abstract class VirtualTokenTuner<TConfig> : PromptEncoderTuner<TConfig> where TConfig : PromptLearningConfig
{
    /// <summary>Wraps <paramref name="model"/> (an <see cref="IPreTrainedModel"/>).</summary>
    protected VirtualTokenTuner(string name, nn.Module model, ILogger? logger) : base(name, model, logger) { }

    /// <inheritdoc />
    protected override ModelInput PrepareInput(ModelInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (Disabled) return input;
        var config = ActiveConfig;
        int n = config.NumVirtualTokens;
        var embeds = input.InputsEmbeds ?? Pretrained.GetInputEmbeddings().forward(
            input.InputIds ?? throw new ArgumentException($"{config.PeftType}: the input needs InputIds or InputsEmbeds.", nameof(input)));  // [B, T, H]
        long batch = embeds.shape[0];
        var prompts = EncoderOutput(batch).to(embeds.dtype);                                       // [B, N, H]
        bool seqCls = config.TaskType == TaskType.SeqCls;
        return input with
        {
            InputIds = null,
            InputsEmbeds = cat([prompts, embeds], 1),                                               // [B, N + T, H]
            AttentionMask = ExtendMask(input.AttentionMask, n),                                     // [B, N + T]
            Labels = seqCls || input.Labels is null ? input.Labels
                : cat([full([batch, n], HeldScalars.Of(-100L), dtype: input.Labels.dtype, device: input.Labels.device), input.Labels], 1),
            PositionIds = null,
            TokenTypeIds = seqCls && input.TokenTypeIds is { } tt
                ? cat([zeros([batch, n], dtype: tt.dtype, device: tt.device), tt], 1)
                : null,
        };
    }

    /// <inheritdoc />
    protected override ModelInput PrepareInputsForGeneration(ModelInput stepInput)
    {
        ArgumentNullException.ThrowIfNull(stepInput);
        if (Disabled) return stepInput;
        if (stepInput.PastKeyValues is { } cache && cache.GetSeqLength() > 0)
            return stepInput with { AttentionMask = ExtendMask(stepInput.AttentionMask, ActiveConfig.NumVirtualTokens), PositionIds = null, TokenTypeIds = null };
        return PrepareInput(stepInput);
    }
}
