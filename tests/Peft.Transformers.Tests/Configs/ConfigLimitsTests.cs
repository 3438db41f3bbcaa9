using System.Text.Json.Nodes;
using Peft.Testing;
using Peft.Transformers;

namespace Peft.Transformers.Tests.Configs;

/// <summary>Absurd sizes in config.json fail fast in validation (before any model is built), naming the file, key and value.</summary>
public sealed class ConfigLimitsTests
{
    [Theory]
    [InlineData("opt-tiny", "hidden_size", 1_000_000_000L)]
    [InlineData("llama-tiny", "hidden_size", 1_000_000_000L)]
    [InlineData("bert-tiny", "num_hidden_layers", 1_000_000L)]
    [InlineData("llama-tiny", "vocab_size", 1_000_000_000_000L)]
    [InlineData("gpt2-tiny", "n_embd", 1_000_000_000L)]
    [InlineData("gpt2-tiny", "n_layer", 1_000_000L)]
    [InlineData("qwen2-tiny", "num_attention_heads", 0L)]
    [InlineData("opt-tiny", "ffn_dim", -5L)]
    public void Absurd_sizes_are_refused_fast_naming_the_file_and_key(string model, string key, long value)
    {
        using var dir = new TempDir();
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Model(model), "config.json")))!.AsObject();
        json[key] = value;
        var path = dir.File("config.json");
        File.WriteAllText(path, json.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => AutoConfig.FromPretrained(path));
        Assert.Contains("config.json", e.Message);
        Assert.Contains(value > int.MaxValue ? key : value.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);
    }

    [Fact]
    public void The_sizes_of_every_tiny_model_are_accepted()
    {
        foreach (var m in Fixtures.TinyModels) AutoConfig.FromPretrained(Path.Combine(Fixtures.Model(m), "config.json"));
    }
}
