using System.Text.Json.Nodes;
using Peft.Testing;

namespace Peft.Core.Tests.Limits; // src/Peft.Core/Peft (a namespace ending in "Peft" would hide Peft.Core)

/// <summary>
/// An adapter_config.json asking for absurd sizes (a LoRA rank of 10^9, 10^9 virtual tokens, an infinite alpha...) is
/// refused when the file is read, naming the file, the key and the value, before any adapter tensor exists
/// (<see cref="AdapterLimits"/>); the fixture adapters, with their real sizes, all still load.
/// </summary>
public class AdapterLimitsTests
{
    /// <summary>(fixture adapter, keys to set (a JSON object), text the message must hold).</summary>
    public static TheoryData<string, string, string> Cases() => new()
    {
        { "opt-lora", """{"r": 1000000000}""", "r 1000000000 is larger than the limit of 65536" },
        { "opt-lora", """{"r": 0}""", "r must be > 0, got 0" },
        { "opt-lora", """{"lora_alpha": 1e300}""", "lora_alpha 1E+300 is larger than the limit" },
        { "opt-lora", """{"lora_alpha": -8}""", "lora_alpha must be a finite number > 0" },
        { "opt-lora", """{"rank_pattern": {"q_proj": 2000000000}}""", "rank_pattern[\"q_proj\"] 2000000000 is larger than the limit" },
        { "opt-lora", """{"alpha_pattern": {"v_proj": 1e12}}""", "alpha_pattern[\"v_proj\"] 1000000000000 is larger than the limit" },
        { "opt-lora", """{"layers_to_transform": [0, 1000000]}""", "layers_to_transform holds 1000000" },
        { "llama-adalora", """{"init_r": 1000000000}""", "init_r 1000000000 is larger than the limit" },
        { "llama-adalora", """{"target_r": 1000000000}""", "target_r 1000000000 is larger than the limit" },
        { "opt-prompt-tuning", """{"num_virtual_tokens": 1000000000}""", "num_virtual_tokens 1000000000 is larger than the limit of 65536" },
        { "opt-prompt-tuning", """{"token_dim": 1000000000}""", "token_dim 1000000000 is larger than the limit" },
        { "opt-prompt-tuning", """{"num_virtual_tokens": 65536, "token_dim": 262144}""", "the prompt table would hold" },
        { "opt-prefix-tuning-projection", """{"num_layers": 1000000}""", "num_layers 1000000 is larger than the limit of 4096" },
        { "opt-prefix-tuning-projection", """{"num_virtual_tokens": 60000, "num_layers": 4096}""", "the prefix table would hold" },
        { "opt-prefix-tuning-projection", """{"encoder_hidden_size": 262144, "num_layers": 4096}""", "the prefix projection's weight would hold" },
        { "opt-p-tuning", """{"encoder_num_layers": 100000}""", "encoder_num_layers 100000 is larger than the limit" },
        { "opt-p-tuning", """{"encoder_hidden_size": 262144, "token_dim": 262144}""", "the prompt encoder's weight would hold" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Absurd_size_is_refused_when_read_naming_file_key_and_value(string adapter, string edits, string expected)
    {
        using var tmp = new TempDir();
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Adapter(adapter), "adapter_config.json")))!.AsObject();
        foreach (var (k, v) in JsonNode.Parse(edits)!.AsObject()) json[k] = v?.DeepClone();
        File.WriteAllText(tmp.File("adapter_config.json"), json.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => PeftConfig.FromPretrained(tmp.Path));
        Assert.Contains("adapter_config.json", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Absurd_rank_given_in_code_is_refused_before_the_model_is_touched()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new LoraConfig { R = 1_000_000_000, TargetModules = ["q_proj"] }.Validate());
        Assert.Contains("LoraConfig.r 1000000000", e.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string> FixtureAdapters()
    {
        var d = new TheoryData<string>();
        foreach (var dir in Directory.GetDirectories(Path.Combine(Fixtures.Hf, "adapters")).Order(StringComparer.Ordinal)) d.Add(Path.GetFileName(dir));
        return d;
    }

    [Theory]
    [MemberData(nameof(FixtureAdapters))]
    public void Every_fixture_adapter_config_is_within_the_limits(string adapter) =>
        Assert.NotNull(PeftConfig.FromPretrained(Fixtures.Adapter(adapter)));
}
