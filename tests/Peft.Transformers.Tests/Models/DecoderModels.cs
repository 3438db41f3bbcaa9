using Peft.Testing;
using Peft.Transformers;
using TorchSharp;

namespace Peft.Transformers.Tests.Models;

/// <summary>The causal decoders the shared backbone drives: the tiny fixtures plus a random tiny Mistral (sliding window 3).</summary>
internal static class DecoderModels
{
    public static readonly string[] Names = ["gpt2-tiny", "opt-tiny", "llama-tiny", "qwen2-tiny", "mistral-tiny"];

    public static TheoryData<string> Theory => new(Names);

    /// <summary>Loads a fixture model, or builds the random Mistral (seeded, so two calls give the same weights).</summary>
    public static PreTrainedModel Load(string name, int layers = 2, double dropout = 0.0)
    {
        if (name != "mistral-tiny") return ModelTestUtil.Load(name);
        torch.manual_seed(11);
        return AutoModelForCausalLM.FromConfig(new MistralConfig
        {
            VocabSize = 64, HiddenSize = 32, IntermediateSize = 40, NumHiddenLayers = layers, NumAttentionHeads = 4,
            NumKeyValueHeads = 2, SlidingWindow = 3, PadTokenId = 0, AttentionDropout = dropout,
        });
    }

    /// <summary>Token ids [B, T] below the model's vocabulary (seeded).</summary>
    public static torch.Tensor RandomIds(PreTrainedModel model, long b, long t, long seed = 5)
    {
        using var g = new torch.Generator((ulong)seed);
        return torch.randint(3, model.GetInputEmbeddings().weight!.shape[0], [b, t], dtype: torch.ScalarType.Int64, generator: g);
    }
}
