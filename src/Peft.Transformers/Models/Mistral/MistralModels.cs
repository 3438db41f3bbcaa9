using Peft.Transformers.Models.Llama;

namespace Peft.Transformers.Models.Mistral;

/// <summary>Mistral backbone (HF <c>MistralModel</c>): the Llama layout with sliding-window attention.</summary>
public sealed class MistralModel : RotaryDecoderModel
{
    /// <summary>Builds the backbone for <paramref name="config"/> (random weights).</summary>
    public MistralModel(MistralConfig config) : base(nameof(MistralModel), config) => RegisterComponents();
}

/// <summary>Mistral causal LM (HF <c>MistralForCausalLM</c>).</summary>
public sealed class MistralForCausalLM : RotaryDecoderForCausalLM
{
    /// <summary>Builds the model for <paramref name="config"/> (random weights).</summary>
    public MistralForCausalLM(MistralConfig config) : base(nameof(MistralForCausalLM), config, new MistralModel(config)) => RegisterComponents();
}

/// <summary>Mistral sequence classifier (HF <c>MistralForSequenceClassification</c>).</summary>
public sealed class MistralForSequenceClassification : RotaryDecoderForSequenceClassification
{
    /// <summary>Builds the model for <paramref name="config"/> (random weights).</summary>
    public MistralForSequenceClassification(MistralConfig config) : base(nameof(MistralForSequenceClassification), config, new MistralModel(config)) => RegisterComponents();
}
