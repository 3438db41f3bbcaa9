using TorchSharp;
using TorchSharp.Modules;

namespace Peft.Core;

/// <summary>
/// What PEFT needs to know about a transformer model without knowing its architecture (implemented by
/// <c>Peft.Transformers.PreTrainedModel</c>). A plain <see cref="torch.nn.Module"/> without it still works with
/// the tuners that only replace layers (LoRA, IA3); prompt-learning methods need it.
/// </summary>
public interface IPreTrainedModel
{
    /// <summary>The config's <c>model_type</c> ("bert", "gpt2", "opt", "llama", "qwen2", ...).</summary>
    string ModelType { get; }

    /// <summary>Where the model was loaded from (HF <c>config.name_or_path</c>), or null.</summary>
    string? NameOrPath { get; }

    /// <summary>The structure prefix-tuning and prompt-learning methods need (layer count, heads, sizes).</summary>
    TransformerDimensions Dimensions { get; }

    /// <summary>The token embedding layer (HF <c>get_input_embeddings()</c>).</summary>
    Embedding GetInputEmbeddings();

    /// <summary>Writes <c>config.json</c> and <c>model.safetensors</c> to <paramref name="dir"/> (HF <c>save_pretrained</c>).</summary>
    void SavePretrained(string dir);
}

/// <summary>The sizes of a transformer that PEFT's prompt-learning methods read from the model config.</summary>
/// <param name="NumLayers">HF <c>num_hidden_layers</c>.</param>
/// <param name="NumAttentionHeads">HF <c>num_attention_heads</c>.</param>
/// <param name="NumKeyValueHeads">HF <c>num_key_value_heads</c> (equals the head count without GQA).</param>
/// <param name="HiddenSize">HF <c>hidden_size</c> (token embedding width).</param>
/// <param name="HeadDim">Size of one attention head.</param>
public sealed record TransformerDimensions(int NumLayers, int NumAttentionHeads, int NumKeyValueHeads, int HiddenSize, int HeadDim);
