using Microsoft.Extensions.Logging;
using Peft.Core.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// P-tuning v1 (PEFT <c>P_TUNING</c>): a <see cref="PromptEncoder"/> per adapter whose output is prepended to the input
/// embeddings (<see cref="VirtualTokenTuner{TConfig}"/>).
/// </summary>
public sealed class PTuningModel : VirtualTokenTuner<PromptEncoderConfig>
{
    /// <summary>Wraps <paramref name="model"/> (an <see cref="IPreTrainedModel"/>).</summary>
    public PTuningModel(nn.Module model, ILogger? logger) : base(nameof(PTuningModel), model, logger) { }

    /// <inheritdoc />
    protected override BasePromptEncoder CreateEncoder(PromptEncoderConfig config)
    {
        if (!config.InferenceMode && config.EncoderReparameterizationType == PromptEncoderReparameterizationType.Mlp && config.EncoderNumLayers != 2)
            Warn($"for MLP, the argument `encoder_num_layers` is ignored. Exactly 2 MLP layers are used.");
        return new PromptEncoder(config, Pretrained.GetInputEmbeddings().weight!.device);
    }
}
