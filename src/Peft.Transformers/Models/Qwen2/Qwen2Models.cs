using Peft.Transformers.Models.Llama;
using static TorchSharp.torch;

namespace Peft.Transformers.Models.Qwen2;

/// <summary>Qwen2 backbone (HF <c>Qwen2Model</c>): the Llama layout with q/k/v biases.</summary>
public sealed class Qwen2Model : RotaryDecoderModel
{
    /// <summary>Builds the backbone for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public Qwen2Model(Qwen2Config config, Device? device = null) : base(nameof(Qwen2Model), config, device) => RegisterComponents();
}

/// <summary>Qwen2 causal LM (HF <c>Qwen2ForCausalLM</c>).</summary>
public sealed class Qwen2ForCausalLM : RotaryDecoderForCausalLM
{
    /// <summary>Builds the model for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public Qwen2ForCausalLM(Qwen2Config config, Device? device = null) : base(nameof(Qwen2ForCausalLM), config, new Qwen2Model(config, device), device) => RegisterComponents();
}

/// <summary>Qwen2 sequence classifier (HF <c>Qwen2ForSequenceClassification</c>).</summary>
public sealed class Qwen2ForSequenceClassification : RotaryDecoderForSequenceClassification
{
    /// <summary>Builds the model for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public Qwen2ForSequenceClassification(Qwen2Config config, Device? device = null) : base(nameof(Qwen2ForSequenceClassification), config, new Qwen2Model(config, device), device) => RegisterComponents();
}

/// <summary>Qwen2 token classifier (HF <c>Qwen2ForTokenClassification</c>).</summary>
public sealed class Qwen2ForTokenClassification : RotaryDecoderForTokenClassification
{
    /// <summary>Builds the model for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public Qwen2ForTokenClassification(Qwen2Config config, Device? device = null) : base(nameof(Qwen2ForTokenClassification), config, new Qwen2Model(config, device), device) => RegisterComponents();
}
