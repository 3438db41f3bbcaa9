using Peft.Transformers.Models.Llama;
using static TorchSharp.torch;

namespace Peft.Transformers.Models.Mistral;

/// <summary>Mistral backbone (HF <c>MistralModel</c>): the Llama layout with sliding-window attention.</summary>
public sealed class MistralModel : RotaryDecoderModel
{
    /// <summary>Builds the backbone for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public MistralModel(MistralConfig config, Device? device = null) : base(nameof(MistralModel), config, device) => RegisterComponents();
}

/// <summary>Mistral causal LM (HF <c>MistralForCausalLM</c>).</summary>
public sealed class MistralForCausalLM : RotaryDecoderForCausalLM
{
    /// <summary>Builds the model for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public MistralForCausalLM(MistralConfig config, Device? device = null) : base(nameof(MistralForCausalLM), config, new MistralModel(config, device), device) => RegisterComponents();
}

/// <summary>Mistral sequence classifier (HF <c>MistralForSequenceClassification</c>).</summary>
public sealed class MistralForSequenceClassification : RotaryDecoderForSequenceClassification
{
    /// <summary>Builds the model for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public MistralForSequenceClassification(MistralConfig config, Device? device = null) : base(nameof(MistralForSequenceClassification), config, new MistralModel(config, device), device) => RegisterComponents();
}
