using Microsoft.Extensions.Logging;
using Peft.Core.Tuners;
using TorchSharp;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// Prefix tuning / P-tuning v2 (PEFT <c>PREFIX_TUNING</c>): a <see cref="PrefixEncoder"/> per adapter whose output is cut
/// into per-layer key and value prefixes [B, H_kv, N, D] and handed to the model as an already filled
/// <see cref="KeyValueCache"/> (PEFT <c>get_prompt</c> → <c>DynamicCache</c>); the attention mask gets N ones in front and
/// given position ids are shifted by N (PEFT <c>_adjust_prompt_learning_kwargs</c>). Without <c>UseCache</c> the prefix
/// cache made for a call is disposed after it; with it the caller owns <see cref="ModelOutput.PastKeyValues"/>.
/// </summary>
public sealed class PrefixTuningModel : PromptEncoderTuner<PrefixTuningConfig>
{
    /// <summary>Wraps <paramref name="model"/> (an <see cref="IPreTrainedModel"/>).</summary>
    public PrefixTuningModel(nn.Module model, ILogger? logger) : base(nameof(PrefixTuningModel), model, logger) { }

    /// <inheritdoc />
    protected override BasePromptEncoder CreateEncoder(PrefixTuningConfig config)
    {
        if (Model is IGradientCheckpointing { IsGradientCheckpointing: true })
            throw new InvalidOperationException("PREFIX_TUNING does not work with gradient checkpointing (PEFT raises the same); disable it first.");
        return new PrefixEncoder(config, Pretrained.GetInputEmbeddings().weight!.device);
    }

    /// <inheritdoc />
    protected override int EncoderTokens(PrefixTuningConfig config) => config.NumVirtualTokens;

    /// <inheritdoc />
    public override ModelOutput Forward(ModelInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return RunWithPrefix(input, PrepareInput(input));
    }

    /// <inheritdoc />
    public override ModelOutput ForwardGenerationStep(ModelInput stepInput)
    {
        ArgumentNullException.ThrowIfNull(stepInput);
        return RunWithPrefix(stepInput, PrepareInputsForGeneration(stepInput));
    }

    /// <summary>Runs the model; a prefix cache made for this call is disposed unless the caller asked for the cache.</summary>
    private ModelOutput RunWithPrefix(ModelInput original, ModelInput prepared)
    {
        var made = prepared.PastKeyValues is { } c && !ReferenceEquals(c, original.PastKeyValues) ? c : null;
        ModelOutput output;
        try
        {
            output = RunModel(prepared);
        }
        catch
        {
            made?.Dispose();
            throw;
        }
        if (made is null || original.UseCache) return output;
        made.Dispose();
        return output with { PastKeyValues = null };
    }

    /// <inheritdoc />
    protected override ModelInput PrepareInput(ModelInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (Disabled) return input;
        var config = ActiveConfig;
        int n = config.NumVirtualTokens;
        var rows = input.InputIds ?? input.InputsEmbeds ?? throw new ArgumentException("PREFIX_TUNING: the input needs InputIds or InputsEmbeds.", nameof(input));
        return input with
        {
            PastKeyValues = PrefixCache(rows.shape[0]),
            AttentionMask = ExtendMask(input.AttentionMask, n),                                    // [B, N + T]
            PositionIds = input.PositionIds?.add(HeldScalars.Of(n), HeldScalars.One),
            TokenTypeIds = config.TaskType == TaskType.SeqCls ? input.TokenTypeIds : null,
        };
    }

    /// <inheritdoc />
    protected override ModelInput PrepareInputsForGeneration(ModelInput stepInput)
    {
        ArgumentNullException.ThrowIfNull(stepInput);
        if (Disabled) return stepInput;
        if (stepInput.PastKeyValues is { } cache && cache.GetSeqLength() > 0)
        {
            int n = ActiveConfig.NumVirtualTokens;
            return stepInput with { AttentionMask = ExtendMask(stepInput.AttentionMask, n), PositionIds = stepInput.PositionIds?.add(HeldScalars.Of(n), HeldScalars.One), TokenTypeIds = null };
        }
        return PrepareInput(stepInput);
    }

    /// <summary>
    /// A new cache holding the active adapter's prefix for <paramref name="batch"/> rows: per layer l, key = slice 2l and
    /// value = slice 2l + 1 of the encoder output viewed as [B, N, 2L, H_kv, D] and permuted to [2L, B, H_kv, N, D]
    /// (PEFT <c>get_prompt</c>). Owned by the caller; its tensors keep the graph to the prefix parameters while training.
    /// </summary>
    private KeyValueCache PrefixCache(long batch)
    {
        var config = ActiveConfig;
        int n = config.NumVirtualTokens, layers = config.NumLayers!.Value, heads = config.NumAttentionHeads!.Value;
        int headDim = config.RequiredTokenDim / heads;
        var cache = new KeyValueCache();
        using var scope = NewDisposeScope();
        var dtype = Pretrained.GetInputEmbeddings().weight!.dtype;
        var kv = EncoderOutput(batch).to(dtype)                                                   // [B, N, 2L·H·D]
            .view(batch, n, layers * 2, heads, headDim)                                            // [B, N, 2L, H, D]
            .permute(2, 0, 3, 1, 4);                                                               // [2L, B, H, N, D]
        for (int l = 0; l < layers; l++) cache.Update(l, kv[2 * l], kv[2 * l + 1]);                // [B, H, N, D] each
        return cache;
    }
}
