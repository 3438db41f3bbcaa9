using System.Text.Json.Nodes;
using Peft.Core.Tests.Tuners;
using Peft.Testing;

namespace Peft.Core.Tests.Limits; // src/Peft.Core/Peft (a namespace ending in "Peft" would hide Peft.Core)

/// <summary>
/// Options that are enums in C# (LoRA <c>bias</c>, <c>prompt_tuning_init</c>, <c>encoder_reparameterization_type</c>,
/// bottleneck <c>placement</c>) keep PEFT's exact strings in <c>adapter_config.json</c>, read back to the same value,
/// and an unknown string is refused naming the file, the key and the value.
/// </summary>
public class ConfigEnumJsonTests
{
    /// <summary>(config, JSON key, the string PEFT writes for the config's value).</summary>
    public static TheoryData<PeftConfig, string, string> Written() => new()
    {
        { new LoraConfig { TargetModules = ["q"] }, "bias", "none" },
        { new LoraConfig { TargetModules = ["q"], Bias = LoraBias.All }, "bias", "all" },
        { new LoraConfig { TargetModules = ["q"], Bias = LoraBias.LoraOnly }, "bias", "lora_only" },
        { new AdaLoraConfig { TargetModules = ["q"], TotalStep = 10, Bias = LoraBias.LoraOnly }, "bias", "lora_only" },
        { new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2 }, "prompt_tuning_init", "RANDOM" },
        { new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2, PromptTuningInit = PromptTuningInit.SampleVocab }, "prompt_tuning_init", "SAMPLE_VOCAB" },
        { new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2 }, "encoder_reparameterization_type", "MLP" },
        { new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2, EncoderReparameterizationType = PromptEncoderReparameterizationType.Lstm }, "encoder_reparameterization_type", "LSTM" },
        { new AdapterConfig { TargetModules = ["fc"] }, "placement", "houlsby" },
        { new AdapterConfig { TargetModules = ["fc"], Placement = BottleneckPlacement.Pfeiffer }, "placement", "pfeiffer" },
    };

    [Theory]
    [MemberData(nameof(Written))]
    public void EnumOptionsAreWrittenAsPeftStringsAndReadBack(PeftConfig config, string key, string peftString)
    {
        using var dir = new TempDir();
        config.SavePretrained(dir.Path);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "adapter_config.json")))!.AsObject();
        Assert.Equal(peftString, json[key]!.GetValue<string>());
        var back = PeftConfig.FromPretrained(dir.Path);
        Assert.IsAssignableFrom(config.GetType(), back); // an AdapterConfig reads back as BottleneckAdapterConfig
        Assert.Equal(peftString, JsonNode.Parse(back.ToJson())![key]!.GetValue<string>());
    }

    [Fact]
    public void PeftsOwnBiasStringsLoadAsTheEnum()
    {
        foreach (var (text, value) in new[] { ("none", LoraBias.None), ("all", LoraBias.All), ("lora_only", LoraBias.LoraOnly) })
        {
            var config = (LoraConfig)PeftConfig.FromJson($$"""{"peft_type": "LORA", "r": 4, "target_modules": ["q"], "bias": "{{text}}"}""");
            Assert.Equal(value, config.Bias);
        }
    }

    [Theory]
    [InlineData("LORA", "bias", "\"lora-only\"", "\"lora-only\" is not one of \"none\", \"all\", \"lora_only\"")]
    [InlineData("LORA", "bias", "\"None\"", "\"None\" is not one of")]
    [InlineData("LORA", "bias", "true", "expected a string")]
    [InlineData("PROMPT_TUNING", "prompt_tuning_init", "\"random\"", "\"random\" is not one of \"TEXT\", \"SAMPLE_VOCAB\", \"RANDOM\"")]
    [InlineData("P_TUNING", "encoder_reparameterization_type", "\"GRU\"", "\"GRU\" is not one of \"MLP\", \"LSTM\"")]
    [InlineData("BOTTLENECK", "placement", "\"parallel\"", "\"parallel\" is not one of \"houlsby\", \"pfeiffer\"")]
    public void UnknownStringIsRefusedNamingFileKeyAndValue(string peftType, string key, string value, string expected)
    {
        using var dir = new TempDir();
        string extra = peftType switch
        {
            "LORA" => "\"r\": 4, \"target_modules\": [\"q\"],",
            "BOTTLENECK" => "\"target_modules\": [\"fc\"],",
            _ => "\"task_type\": \"CAUSAL_LM\", \"num_virtual_tokens\": 2,",
        };
        string path = Path.Combine(dir.Path, "adapter_config.json");
        File.WriteAllText(path, $$"""{"peft_type": "{{peftType}}", {{extra}} "{{key}}": {{value}}}""");
        var ex = Assert.Throws<InvalidDataException>(() => PeftConfig.FromPretrained(dir.Path));
        Assert.Contains(path, ex.Message);
        Assert.Contains($"\"{key}\"", ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void UndefinedEnumValueIsRefusedByValidateAndNotWritten()
    {
        var config = new LoraConfig { TargetModules = ["lin0"], Bias = (LoraBias)7 };
        var ex = Assert.Throws<ArgumentOutOfRangeException>(config.Validate);
        Assert.Contains("bias", ex.Message);
        Assert.Contains("bias", Assert.ThrowsAny<ArgumentException>(() => PeftModel.GetPeftModel(new TinyMlp(), config)).Message);
        Assert.Contains("bias", Assert.Throws<ArgumentOutOfRangeException>(config.ToJson).Message);
    }
}
