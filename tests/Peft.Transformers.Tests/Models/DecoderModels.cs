using Peft.Testing;
using Peft.Transformers;
using TorchSharp;

namespace Peft.Transformers.Tests.Models;

/// <summary>The causal decoders the shared backbone drives: the tiny fixtures plus a random tiny Mistral (sliding window 3).</summary>
internal static class DecoderModels
{
    public static readonly string[] Names = ["gpt2-tiny", "opt-tiny", "llama-tiny", "qwen2-tiny", "mistral-tiny"];

    public static TheoryData<string> Theory => new(Names);

    /// <summary>
    /// Loads a fixture model (with every dropout probability set to <paramref name="dropout"/> when it is not 0), or
    /// builds the random Mistral (seeded, so two calls give the same weights).
    /// </summary>
    public static PreTrainedModel Load(string name, int layers = 2, double dropout = 0.0)
    {
        if (name != "mistral-tiny" && dropout == 0.0) return ModelTestUtil.Load(name);
        if (name != "mistral-tiny")
        {
            var dir = Fixtures.Model(name);
            PretrainedConfig config = AutoConfig.FromPretrained(dir) switch
            {
                GPT2Config g => g with { AttnPdrop = dropout, ResidPdrop = dropout, EmbdPdrop = dropout },
                OPTConfig o => o with { Dropout = dropout, AttentionDropout = dropout },
                RotaryDecoderConfig r => r with { AttentionDropout = dropout },
                var other => throw new ArgumentException($"no dropout mapping for {other.ModelType}"),
            };
            var model = AutoModelForCausalLM.FromConfig(config);
            model.LoadWeights(dir);
            return model;
        }
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
