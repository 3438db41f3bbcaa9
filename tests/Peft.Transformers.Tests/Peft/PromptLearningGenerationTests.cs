using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Testing;
using Peft.Transformers.Generation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.PeftParity;

/// <summary>
/// Generation with each prompt-learning method (through the per-step hook): greedy decoding with the KV cache (virtual
/// tokens / prefixes go in at the first step only, later steps feed one token) equals decoding without the cache and a
/// by-hand recomputation of the whole sequence through <see cref="PeftModel.forward"/> every step; beam search and
/// seeded sampling agree with and without the cache. Adapters start from their (seeded) initialisation, in training
/// mode, so the encoders (MLP, LSTM, projection) run.
/// </summary>
public sealed class PromptLearningGenerationTests
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var model in new[] { "llama-tiny", "opt-tiny" })
        {
            foreach (var method in new[] { "prompt-tuning", "p-tuning-mlp", "p-tuning-lstm", "prefix-tuning", "prefix-tuning-projection" })
                data.Add(model, method);
        }
        return data;
    }

    internal static PeftConfig Config(string method, TaskType task = TaskType.CausalLM) => method switch
    {
        "prompt-tuning" => new PromptTuningConfig { TaskType = task, NumVirtualTokens = 4 },
        "prompt-tuning-sample-vocab" => new PromptTuningConfig { TaskType = task, NumVirtualTokens = 4, PromptTuningInit = PromptTuningInit.SampleVocab },
        "p-tuning-mlp" => new PromptEncoderConfig { TaskType = task, NumVirtualTokens = 3, EncoderHiddenSize = 16 },
        "p-tuning-lstm" => new PromptEncoderConfig { TaskType = task, NumVirtualTokens = 3, EncoderHiddenSize = 8, EncoderReparameterizationType = PromptEncoderReparameterizationType.Lstm },
        "prefix-tuning" => new PrefixTuningConfig { TaskType = task, NumVirtualTokens = 3 },
        "prefix-tuning-projection" => new PrefixTuningConfig { TaskType = task, NumVirtualTokens = 3, PrefixProjection = true, EncoderHiddenSize = 16 },
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, null),
    };

    private static (PeftModel Model, Tensor Ids, Tensor Mask) Create(string modelName, string method)
    {
        var lm = AutoModelForCausalLM.FromPretrained(Fixtures.Model(modelName));
        PeftModel pm;
        using (manual_seed(11)) pm = PeftModel.GetPeftModel(lm, Config(method));
        pm.eval();
        using var f = SafetensorsFile.Open(Fixtures.Reference(modelName));
        return (pm, f.GetTensor("gen_input_ids"), f.GetTensor("gen_attention_mask"));
    }

    /// <summary>HF generate's position ids: cumsum(mask) − 1, padding set to 1.</summary>
    private static Tensor GeneratePositions(Tensor mask) => mask.cumsum(-1).sub(1).masked_fill(mask.eq(0), 1);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Greedy_with_cache_equals_without_cache_and_recomputation(string modelName, string method)
    {
        using var scope = NewDisposeScope();
        var (pm, ids, mask) = Create(modelName, method);
        using var _ = pm;
        const int newTokens = 8;
        var cached = pm.Generate(ids, mask, new GenerationConfig { MaxNewTokens = newTokens, UseCache = true });
        var uncached = pm.Generate(ids, mask, new GenerationConfig { MaxNewTokens = newTokens, UseCache = false });
        TensorAssert.Equal(uncached, cached, $"{modelName} {method}: cache vs no cache");

        // By hand: the whole sequence through PeftModel.forward (which prepends the prompt / builds the prefix) every step.
        var seq = ids;
        var m = mask;
        using (no_grad())
        {
            for (int i = 0; i < newTokens; i++)
            {
                var output = pm.forward(new ModelInput { InputIds = seq, AttentionMask = m, PositionIds = GeneratePositions(m) });
                Assert.Null(output.PastKeyValues);
                var next = output.Logits![.., -1, ..].argmax(-1).unsqueeze(1);                 // [B, 1]
                seq = cat([seq, next], 1);
                m = cat([m, ones_like(next)], 1);
            }
        }
        TensorAssert.Equal(seq, cached, $"{modelName} {method}: generate vs recomputation");

        using var plain = AutoModelForCausalLM.FromPretrained(Fixtures.Model(modelName));
        var baseIds = plain.Generate(ids, mask, new GenerationConfig { MaxNewTokens = newTokens });
        Assert.False(baseIds.eq(cached).all().item<bool>(), $"{modelName} {method}: the adapter does not change greedy decoding, so this test would prove nothing");
        using (pm.DisableAdapter())
        {
            TensorAssert.Equal(baseIds, pm.Generate(ids, mask, new GenerationConfig { MaxNewTokens = newTokens }), $"{modelName} {method}: disabled = base model");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Beams_and_sampling_with_cache_equal_without_cache(string modelName, string method)
    {
        using var scope = NewDisposeScope();
        var (pm, ids, mask) = Create(modelName, method);
        using var _ = pm;
        var beams = new GenerationConfig { MaxNewTokens = 6, NumBeams = 3, UseCache = true };
        TensorAssert.Equal(pm.Generate(ids, mask, beams with { UseCache = false }), pm.Generate(ids, mask, beams), $"{modelName} {method}: beams");
        var sample = new GenerationConfig { MaxNewTokens = 6, DoSample = true, Seed = 1234, TopK = 0, UseCache = true };
        TensorAssert.Equal(pm.Generate(ids, mask, sample with { UseCache = false }), pm.Generate(ids, mask, sample), $"{modelName} {method}: sampling");
    }
}
