using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.PeftParity; // not "...Tests.Peft": that would shadow the root namespace Peft in sibling tests

/// <summary>
/// Golden parity with Python PEFT 0.21 for the (IA)³ fixture <c>shared/fixtures/hf/adapters/opt-ia3</c> (k_proj / v_proj
/// output scaling, fc2 input scaling on the tiny OPT): parameter counts and the printed line, logits with the adapter /
/// disabled / merged, and the files SavePretrained writes.
/// </summary>
public class IA3FixtureParityTests
{
    private const string Name = "opt-ia3";

    private static JsonObject ReferenceJson() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Adapter(Name), "reference.json")))!.AsObject();

    [Fact]
    public void ConfigReadsAsIA3ConfigWithPeftsFields()
    {
        var config = Assert.IsType<IA3Config>(PeftConfig.FromPretrained(Fixtures.Adapter(Name)));
        Assert.Equal(["k_proj", "fc2", "v_proj"], config.TargetModules!.Names!);
        Assert.Equal(["fc2"], config.FeedforwardModules!.Names!);
        Assert.True(config.InitIA3Weights);
        Assert.True(config.InferenceMode);
        Assert.Equal(TaskType.CausalLM, config.TaskType);
    }

    [Fact]
    public void GetPeftModelCountsAndPrintedLineMatchPeft()
    {
        var reference = ReferenceJson();
        var config = PeftConfig.FromPretrained(Fixtures.Adapter(Name)) with { InferenceMode = false };
        using var model = LoraFixtureParityTests.LoadBase(Name);
        var pm = PeftModel.GetPeftModel(model, config);
        var (trainable, all) = pm.GetNbTrainableParameters();
        Assert.Equal(reference["trainable_params"]!.GetValue<long>(), trainable);
        Assert.Equal(reference["all_params"]!.GetValue<long>(), all);
        Assert.Equal(reference["print_trainable_parameters"]!.GetValue<string>(), pm.PrintTrainableParameters());
        Assert.All(pm.named_parameters().Where(p => p.parameter.requires_grad), p => Assert.Contains(".ia3_l.default", p.name));
    }

    [Fact]
    public void FromPretrainedReproducesLogitsDisabledMergedAndUnmerged()
    {
        using var scope = NewDisposeScope();
        using var reference = SafetensorsFile.Open(Path.Combine(Fixtures.Adapter(Name), "reference.safetensors"));
        var mask = reference.GetTensor("attention_mask");
        var input = new ModelInput { InputIds = reference.GetTensor("input_ids"), AttentionMask = mask };
        var logits = reference.GetTensor("logits");
        var disabled = reference.GetTensor("logits_adapter_disabled");
        var pm = PeftModel.FromPretrained(LoraFixtureParityTests.LoadBase(Name), Fixtures.Adapter(Name));
        using (no_grad())
        {
            TensorAssert.Close(logits, pm.forward(input).Logits!, 1e-4, mask, "logits");
            using (pm.DisableAdapter()) TensorAssert.Close(disabled, pm.forward(input).Logits!, 1e-4, mask, "logits_adapter_disabled");
            TensorAssert.Close(logits, pm.forward(input).Logits!, 1e-4, mask, "logits after re-enabling");
            pm.MergeAdapter();
            TensorAssert.Close(reference.GetTensor("logits_merged"), pm.forward(input).Logits!, 1e-4, mask, "merged in place");
            pm.UnmergeAdapter();
            using (pm.DisableAdapter()) TensorAssert.Close(disabled, pm.forward(input).Logits!, 1e-4, mask, "base restored by unmerge");
            var merged = (PreTrainedModel)pm.MergeAndUnload();
            Assert.DoesNotContain(merged.named_parameters(), p => p.name.Contains("ia3_") || p.name.Contains("base_layer"));
            TensorAssert.Close(reference.GetTensor("logits_merged"), merged.forward(input).Logits!, 1e-4, mask, "logits_merged");
            merged.Dispose();
        }
    }

    [Fact]
    public void SavePretrainedWritesTheFixtureFiles()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var model = LoraFixtureParityTests.LoadBase(Name);
        var pm = PeftModel.FromPretrained(model, Fixtures.Adapter(Name));
        pm.SavePretrained(dir.Path);

        using var expected = SafetensorsFile.Open(Path.Combine(Fixtures.Adapter(Name), "adapter_model.safetensors"));
        using var actual = SafetensorsFile.Open(Path.Combine(dir.Path, "adapter_model.safetensors"));
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var key in expected.Keys)
        {
            Assert.Equal(expected.GetInfo(key).Shape, actual.GetInfo(key).Shape);
            Assert.True(expected.GetBytes(key).SequenceEqual(actual.GetBytes(key)), $"{key} values differ");
        }
        var expectedConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Adapter(Name), "adapter_config.json")))!.AsObject();
        var actualConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "adapter_config.json")))!.AsObject();
        Assert.Equal(expectedConfig.Select(kv => kv.Key).Order(), actualConfig.Select(kv => kv.Key).Order());
        foreach (var (key, value) in expectedConfig)
        {
            Assert.True(LoraFixtureParityTests.JsonEquivalent(value, actualConfig[key]),
                $"adapter_config.json \"{key}\": expected {value?.ToJsonString()}, wrote {actualConfig[key]?.ToJsonString()}");
        }
    }

    [Fact]
    public void MixedAdapterBatchesAreRefusedAsInPeft()
    {
        using var scope = NewDisposeScope();
        using var reference = SafetensorsFile.Open(Path.Combine(Fixtures.Adapter(Name), "reference.safetensors"));
        var pm = PeftModel.FromPretrained(LoraFixtureParityTests.LoadBase(Name), Fixtures.Adapter(Name));
        var ex = Assert.Throws<NotSupportedException>(() => pm.forward(new ModelInput
        {
            InputIds = reference.GetTensor("input_ids"), AttentionMask = reference.GetTensor("attention_mask"),
            AdapterNames = ["default", "__base__", "default"],
        }));
        Assert.Contains("IA3Linear", ex.Message);
    }
}
