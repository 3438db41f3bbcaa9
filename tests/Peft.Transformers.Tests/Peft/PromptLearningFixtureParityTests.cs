using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.PeftParity;

/// <summary>
/// Golden parity with Python PEFT 0.21 for the prompt-learning fixtures in <c>shared/fixtures/hf/adapters</c>: parameter
/// counts and the printed line (config read with InferenceMode = false, so the P-tuning MLP and the prefix projection
/// exist), logits with the adapter (prompt tuning / P-tuning: the virtual positions first) and disabled, and the files
/// SavePretrained writes.
/// </summary>
public class PromptLearningFixtureParityTests
{
    public static TheoryData<string> Cases => new() { "opt-prompt-tuning", "opt-p-tuning", "llama-prefix-tuning", "opt-prefix-tuning-projection" };

    private static JsonObject ReferenceJson(string name) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Adapter(name), "reference.json")))!.AsObject();

    [Theory]
    [MemberData(nameof(Cases))]
    public void GetPeftModelCountsAndPrintedLineMatchPeft(string name)
    {
        var reference = ReferenceJson(name);
        var config = PeftConfig.FromPretrained(Fixtures.Adapter(name)) with { InferenceMode = false };
        using var model = LoraFixtureParityTests.LoadBase(name);
        using var pm = PeftModel.GetPeftModel(model, config);
        var (trainable, all) = pm.GetNbTrainableParameters();
        Assert.Equal(reference["trainable_params"]!.GetValue<long>(), trainable);
        Assert.Equal(reference["all_params"]!.GetValue<long>(), all);
        Assert.Equal(reference["print_trainable_parameters"]!.GetValue<string>(), pm.PrintTrainableParameters());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void FromPretrainedReproducesLogitsAndDisabled(string name)
    {
        using var scope = NewDisposeScope();
        using var reference = SafetensorsFile.Open(Path.Combine(Fixtures.Adapter(name), "reference.safetensors"));
        var ids = reference.GetTensor("input_ids");
        var mask = reference.GetTensor("attention_mask");
        using var model = LoraFixtureParityTests.LoadBase(name);
        using var pm = PeftModel.FromPretrained(model, Fixtures.Adapter(name));
        var input = new ModelInput { InputIds = ids, AttentionMask = mask };
        var logits = reference.GetTensor("logits");
        // Prompt tuning / P-tuning logits have the virtual positions first; they are always attended.
        long extra = logits.shape[1] - ids.shape[1];
        var logitsMask = extra == 0 ? mask : cat([ones([mask.shape[0], extra], dtype: mask.dtype), mask], 1);
        using (no_grad())
        {
            var output = pm.forward(input);
            Assert.Null(output.PastKeyValues);
            TensorAssert.Close(logits, output.Logits!, 1e-4, logitsMask, $"{name} logits");
            using (pm.DisableAdapter())
            {
                TensorAssert.Close(reference.GetTensor("logits_adapter_disabled"), pm.forward(input).Logits!, 1e-4, mask, $"{name} logits_adapter_disabled");
            }
            TensorAssert.Close(logits, pm.forward(input).Logits!, 1e-4, logitsMask, $"{name} logits after re-enabling");
        }
        Assert.Throws<NotSupportedException>(() => pm.MergeAdapter());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SavePretrainedWritesTheFixtureFiles(string name)
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var model = LoraFixtureParityTests.LoadBase(name);
        using var pm = PeftModel.FromPretrained(model, Fixtures.Adapter(name));
        pm.SavePretrained(dir.Path);

        using var expected = SafetensorsFile.Open(Path.Combine(Fixtures.Adapter(name), "adapter_model.safetensors"));
        using var actual = SafetensorsFile.Open(Path.Combine(dir.Path, "adapter_model.safetensors"));
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("pt", actual.Metadata!["format"]);
        foreach (var key in expected.Keys)
        {
            Assert.Equal(expected.GetInfo(key).Shape, actual.GetInfo(key).Shape);
            Assert.Equal(expected.GetInfo(key).Dtype, actual.GetInfo(key).Dtype);
            Assert.True(expected.GetBytes(key).SequenceEqual(actual.GetBytes(key)), $"{name}: {key} values differ");
        }

        var expectedConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Adapter(name), "adapter_config.json")))!.AsObject();
        var actualConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "adapter_config.json")))!.AsObject();
        Assert.Equal(expectedConfig.Select(kv => kv.Key).Order(), actualConfig.Select(kv => kv.Key).Order());
        foreach (var (key, value) in expectedConfig)
        {
            Assert.True(LoraFixtureParityTests.JsonEquivalent(value, actualConfig[key]), $"{name}: adapter_config.json \"{key}\": expected {value?.ToJsonString()}, wrote {actualConfig[key]?.ToJsonString()}");
        }
    }

    [Fact]
    public void LlamaPrefixTuningUsesTheKeyValueHeadCount()
    {
        // llama-tiny: 4 query heads, 2 key/value heads of 16 → PEFT (peft#1901) writes token_dim 32, num_attention_heads 2.
        var config = new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 3 };
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny"));
        using var pm = PeftModel.GetPeftModel(model, config);
        var used = (PrefixTuningConfig)pm.ActivePeftConfig;
        var dims = ((IPreTrainedModel)model).Dimensions;
        Assert.Equal(dims.NumKeyValueHeads, used.NumAttentionHeads);
        Assert.Equal(dims.NumKeyValueHeads * dims.HeadDim, used.TokenDim);
        Assert.Equal(used.TokenDim, used.EncoderHiddenSize);
        Assert.NotEqual(dims.NumAttentionHeads, dims.NumKeyValueHeads); // the fixture model really is GQA
    }
}
