using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.PeftParity; // not "...Tests.Peft": that would shadow the root namespace Peft in sibling tests

/// <summary>
/// Golden parity with Python PEFT 0.21 for the LoRA-family fixtures in <c>shared/fixtures/hf/adapters</c>: parameter
/// counts and the printed line, logits with the adapter / disabled / merged, and the files SavePretrained writes.
/// </summary>
public class LoraFixtureParityTests
{
    public static TheoryData<string> Cases => new()
    {
        "opt-lora", "opt-lora-bias-all", "gpt2-lora-conv1d", "bert-lora-seqcls", "bert-ner-lora-tokcls",
        "llama-lora-rslora-all-linear", "llama-dora", "qwen2-lora-layers-pattern", "llama-adalora",
    };

    private static JsonObject ReferenceJson(string name) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Adapter(name), "reference.json")))!.AsObject();

    internal static PreTrainedModel LoadBase(string name)
    {
        var dir = Path.Combine(Fixtures.Hf, ReferenceJson(name)["base_model"]!.GetValue<string>());
        return PeftConfig.FromPretrained(Fixtures.Adapter(name)).TaskType switch
        {
            TaskType.SeqCls => AutoModelForSequenceClassification.FromPretrained(dir),
            TaskType.TokenCls => AutoModelForTokenClassification.FromPretrained(dir),
            _ => AutoModelForCausalLM.FromPretrained(dir),
        };
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GetPeftModelCountsAndPrintedLineMatchPeft(string name)
    {
        var reference = ReferenceJson(name);
        var config = PeftConfig.FromPretrained(Fixtures.Adapter(name)) with { InferenceMode = false };
        using var model = LoadBase(name);
        var pm = PeftModel.GetPeftModel(model, config);
        var (trainable, all) = pm.GetNbTrainableParameters();
        Assert.Equal(reference["trainable_params"]!.GetValue<long>(), trainable);
        Assert.Equal(reference["all_params"]!.GetValue<long>(), all);
        Assert.Equal(reference["print_trainable_parameters"]!.GetValue<string>(), pm.PrintTrainableParameters());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void FromPretrainedReproducesLogitsDisabledAndMerged(string name)
    {
        using var scope = NewDisposeScope();
        using var reference = SafetensorsFile.Open(Path.Combine(Fixtures.Adapter(name), "reference.safetensors"));
        var ids = reference.GetTensor("input_ids");
        var mask = reference.GetTensor("attention_mask");
        var model = LoadBase(name);
        var pm = PeftModel.FromPretrained(model, Fixtures.Adapter(name));
        var input = new ModelInput { InputIds = ids, AttentionMask = mask };
        var logits = reference.GetTensor("logits");
        var tokenMask = logits.dim() == 3 ? mask : null;
        using (no_grad())
        {
            TensorAssert.Close(logits, pm.forward(input).Logits!, 1e-4, tokenMask, $"{name} logits");
            using (pm.DisableAdapter())
            {
                TensorAssert.Close(reference.GetTensor("logits_adapter_disabled"), pm.forward(input).Logits!, 1e-4, tokenMask, $"{name} logits_adapter_disabled");
            }
            TensorAssert.Close(logits, pm.forward(input).Logits!, 1e-4, tokenMask, $"{name} logits after re-enabling");
            var merged = (PreTrainedModel)pm.MergeAndUnload();
            Assert.DoesNotContain(merged.named_parameters(), p => p.name.Contains("lora_"));
            TensorAssert.Close(reference.GetTensor("logits_merged"), merged.forward(input).Logits!, 1e-4, tokenMask, $"{name} logits_merged");
            merged.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SavePretrainedWritesTheFixtureFiles(string name)
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var model = LoadBase(name);
        var pm = PeftModel.FromPretrained(model, Fixtures.Adapter(name));
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
            Assert.True(JsonEquivalent(value, actualConfig[key]), $"{name}: adapter_config.json \"{key}\": expected {value?.ToJsonString()}, wrote {actualConfig[key]?.ToJsonString()}");
        }
    }

    /// <summary>Deep JSON equality where numbers compare by value (Python writes 0.0, .NET 0).</summary>
    internal static bool JsonEquivalent(JsonNode? a, JsonNode? b) => (a, b) switch
    {
        (null, null) => true,
        (JsonObject x, JsonObject y) => x.Count == y.Count && x.All(kv => y.ContainsKey(kv.Key) && JsonEquivalent(kv.Value, y[kv.Key])),
        (JsonArray x, JsonArray y) => x.Count == y.Count && x.Zip(y).All(p => JsonEquivalent(p.First, p.Second)),
        (JsonValue x, JsonValue y) when x.GetValueKind() == System.Text.Json.JsonValueKind.Number && y.GetValueKind() == System.Text.Json.JsonValueKind.Number
            => x.GetValue<double>() == y.GetValue<double>(),
        (JsonValue x, JsonValue y) => x.ToJsonString() == y.ToJsonString(),
        _ => false,
    };
}

/// <summary>Two fixture adapters on one base model: each reproduces its own reference when active.</summary>
public class LoraFixtureMultiAdapterTests
{
    [Fact]
    public void TwoLlamaAdaptersOnOneModelSwitchAndReproduceTheirReferences()
    {
        using var scope = NewDisposeScope();
        var model = LoraFixtureParityTests.LoadBase("llama-dora");
        var pm = PeftModel.FromPretrained(model, Fixtures.Adapter("llama-dora"), adapterName: "dora");
        pm.LoadAdapter(Fixtures.Adapter("llama-lora-rslora-all-linear"), "rslora");
        Assert.Equal(["dora"], pm.ActiveAdapters);
        foreach (var (adapter, fixture) in new[] { ("dora", "llama-dora"), ("rslora", "llama-lora-rslora-all-linear"), ("dora", "llama-dora") })
        {
            pm.SetAdapter(adapter);
            using var reference = SafetensorsFile.Open(Path.Combine(Fixtures.Adapter(fixture), "reference.safetensors"));
            var mask = reference.GetTensor("attention_mask");
            using var _ = no_grad();
            var logits = pm.forward(new ModelInput { InputIds = reference.GetTensor("input_ids"), AttentionMask = mask }).Logits!;
            TensorAssert.Close(reference.GetTensor("logits"), logits, 1e-4, mask, $"{adapter} active");
        }
        using var dir = new TempDir();
        pm.SavePretrained(dir.Path);
        Assert.True(File.Exists(Path.Combine(dir.Path, "dora", "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(dir.Path, "rslora", "adapter_model.safetensors")));
        pm.DeleteAdapter("rslora");
        Assert.DoesNotContain(pm.named_parameters(), p => p.name.Contains("rslora"));
    }
}

/// <summary>Mixed-adapter batches (PEFT's adapter_names) on a fixture model: each row matches its reference.</summary>
public class LoraFixtureMixedBatchTests
{
    [Theory]
    [InlineData("opt-lora")]
    [InlineData("gpt2-lora-conv1d")]
    public void RowsWithAndWithoutTheAdapterMatchTheirReferences(string name)
    {
        using var scope = NewDisposeScope();
        using var reference = SafetensorsFile.Open(Path.Combine(Fixtures.Adapter(name), "reference.safetensors"));
        var pm = PeftModel.FromPretrained(LoraFixtureParityTests.LoadBase(name), Fixtures.Adapter(name));
        var mask = reference.GetTensor("attention_mask");
        using var _ = no_grad();
        var logits = pm.forward(new ModelInput
        {
            InputIds = reference.GetTensor("input_ids"), AttentionMask = mask, AdapterNames = ["default", "__base__", "default"],
        }).Logits!;
        var with = reference.GetTensor("logits");
        var without = reference.GetTensor("logits_adapter_disabled");
        TensorAssert.Close(with[0], logits[0], 1e-4, mask[0], "row 0 (adapter)");
        TensorAssert.Close(without[1], logits[1], 1e-4, mask[1], "row 1 (__base__)");
        TensorAssert.Close(with[2], logits[2], 1e-4, mask[2], "row 2 (adapter)");
    }
}
