using System.Text.Json.Nodes;
using Peft.Testing;

namespace Peft.Core.Tests.Tuners;

public class LoraConfigTests
{
    public static TheoryData<string> FixtureCases => new()
    {
        "opt-lora", "opt-lora-bias-all", "gpt2-lora-conv1d", "bert-lora-seqcls", "bert-ner-lora-tokcls",
        "llama-lora-rslora-all-linear", "llama-dora", "qwen2-lora-layers-pattern",
    };

    [Theory]
    [MemberData(nameof(FixtureCases))]
    public void FixtureConfigsReadAsLoraConfigAndWriteBackEveryKey(string name)
    {
        var dir = Fixtures.Adapter(name);
        var config = Assert.IsType<LoraConfig>(PeftConfig.FromPretrained(dir));
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!.AsObject();
        Assert.Equal(expected["r"]!.GetValue<int>(), config.R);
        Assert.Equal(expected["lora_alpha"]!.GetValue<double>(), config.LoraAlpha);
        Assert.Equal(expected["use_dora"]!.GetValue<bool>(), config.UseDora);
        Assert.Equal(expected["use_rslora"]!.GetValue<bool>(), config.UseRslora);
        Assert.Equal(expected["bias"]!.GetValue<string>(), JsonNode.Parse(config.ToJson())!["bias"]!.GetValue<string>());
        Assert.Equal(expected["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()), config.TargetModules!.Names!);
        Assert.True(config.InferenceMode);

        var written = JsonNode.Parse(config.ToJson())!.AsObject();
        Assert.Equal(expected.Select(kv => kv.Key), written.Select(kv => kv.Key)); // same keys, sorted like PEFT
        foreach (var (key, value) in expected)
            Assert.True(JsonEquivalent(value, written[key]), $"\"{key}\": expected {value?.ToJsonString()}, wrote {written[key]?.ToJsonString()}");

        var notInference = config with { InferenceMode = false };
        Assert.False(notInference.InferenceMode);
        Assert.Equal(config.R, notInference.R);
    }

    [Fact]
    public void TaskTypesUsePeftNames()
    {
        Assert.Equal(TaskType.CausalLM, PeftConfig.FromPretrained(Fixtures.Adapter("opt-lora")).TaskType);
        Assert.Equal(TaskType.SeqCls, PeftConfig.FromPretrained(Fixtures.Adapter("bert-lora-seqcls")).TaskType);
        Assert.Equal(TaskType.TokenCls, PeftConfig.FromPretrained(Fixtures.Adapter("bert-ner-lora-tokcls")).TaskType);
        foreach (var (t, s) in new[] { (TaskType.QuestionAns, "QUESTION_ANS"), (TaskType.FeatureExtraction, "FEATURE_EXTRACTION"), (TaskType.Seq2SeqLM, "SEQ_2_SEQ_LM") })
        {
            var json = new LoraConfig { TaskType = t, TargetModules = ["x"] }.ToJson();
            Assert.Equal(s, JsonNode.Parse(json)!["task_type"]!.GetValue<string>());
            Assert.Equal(t, PeftConfig.FromJson(json).TaskType);
        }
    }

    [Fact]
    public void TargetModulesAcceptListsRegexAndAllLinear()
    {
        var list = new LoraConfig { TargetModules = ["q_proj", "v_proj"] };
        Assert.Equal(["q_proj", "v_proj"], list.TargetModules!.Names!);
        Assert.True(list.TargetModules.Matches("model.layers.0.self_attn.q_proj"));
        Assert.True(list.TargetModules.Matches("q_proj"));
        Assert.False(list.TargetModules.Matches("model.layers.0.self_attn.qq_proj"));
        var array = new LoraConfig { TargetModules = new[] { "c_attn" } };
        Assert.Equal(["c_attn"], array.TargetModules!.Names!);
        var regex = new LoraConfig { TargetModules = @".*\.(q|v)_proj" };
        Assert.True(regex.TargetModules!.Matches("model.layers.1.self_attn.v_proj"));
        Assert.False(regex.TargetModules.Matches("model.layers.1.self_attn.v_proj.base_layer"));
        Assert.Equal("\".*\\\\.(q|v)_proj\"", JsonNode.Parse(regex.ToJson())!["target_modules"]!.ToJsonString());
        Assert.True(new LoraConfig { TargetModules = "all-linear" }.TargetModules!.IsAllLinear);
        Assert.Equal(regex.TargetModules, PeftConfig.FromJson(regex.ToJson()) is LoraConfig l ? l.TargetModules : null);
    }

    [Fact]
    public void UnknownKeysAreKeptAndWrittenBack()
    {
        var json = new LoraConfig { TargetModules = ["q"] }.ToJson();
        var node = JsonNode.Parse(json)!.AsObject();
        node["some_future_key"] = new JsonObject { ["a"] = 1 };
        var config = PeftConfig.FromJson(node.ToJsonString());
        Assert.Contains("some_future_key", config.ExtensionData!.Keys);
        Assert.Equal("{\"a\":1}", JsonNode.Parse(config.ToJson())!["some_future_key"]!.ToJsonString());
    }

    [Theory]
    [InlineData(0, 8, LoraBias.None, "r")]
    [InlineData(-1, 8, LoraBias.None, "r")]
    [InlineData(4, 0, LoraBias.None, "lora_alpha")]
    [InlineData(4, -2, LoraBias.None, "lora_alpha")]
    public void InvalidValuesNameTheField(int r, double alpha, LoraBias bias, string field)
    {
        var config = new LoraConfig { R = r, LoraAlpha = alpha, Bias = bias, TargetModules = ["lin0"] };
        var ex = Assert.ThrowsAny<ArgumentException>(config.Validate);
        Assert.Contains(field, ex.Message);
        var get = Assert.ThrowsAny<ArgumentException>(() => PeftModel.GetPeftModel(new TinyMlp(), config));
        Assert.Contains(field, get.Message);
        var file = Assert.Throws<InvalidDataException>(() => PeftConfig.FromJson(config.ToJson(), "x/adapter_config.json"));
        Assert.Contains("x/adapter_config.json", file.Message);
        Assert.Contains(field, file.Message);
    }

    [Fact]
    public void SettingsThatWouldChangeTheMathAreRejected()
    {
        var node = JsonNode.Parse(new LoraConfig { TargetModules = ["q"] }.ToJson())!.AsObject();
        node["use_qalora"] = true;
        var ex = Assert.Throws<NotSupportedException>(() => PeftConfig.FromJson(node.ToJsonString()));
        Assert.Contains("use_qalora", ex.Message);
        node["use_qalora"] = false;
        node["init_lora_weights"] = "pissa";
        Assert.Contains("pissa", Assert.ThrowsAny<Exception>(() => PeftConfig.FromJson(node.ToJsonString())).Message);
        node["init_lora_weights"] = true;
        node["peft_type"] = "NOPE";
        Assert.Contains("NOPE", Assert.Throws<NotSupportedException>(() => PeftConfig.FromJson(node.ToJsonString())).Message);
    }

    [Fact]
    public void MissingConfigFileNamesTheFolder()
    {
        using var dir = new TempDir();
        var ex = Assert.Throws<FileNotFoundException>(() => PeftConfig.FromPretrained(dir.Path));
        Assert.Contains(dir.Path, ex.Message);
    }

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
