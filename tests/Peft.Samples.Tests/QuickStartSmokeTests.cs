using System.Text.Json.Nodes;
using Peft.Testing;
using Xunit.Abstractions;

namespace Peft.Samples.Tests;

/// <summary>
/// Runs samples/QuickStart in its smoke mode, from a config (word-level tokenizer, pre-training) and on a model
/// folder (<c>--model</c>, the tiny OPT fixture), and checks results.json: finite perplexities, completions that
/// continue the prompt, and the reloaded and merged adapters reproducing the trained one (text and logits).
/// </summary>
public class QuickStartSmokeTests(ITestOutputHelper output)
{
    [Fact]
    public void FromConfigTheAdapterReloadsAndMergesToTheSameModel()
    {
        using var dir = new TempDir();
        SampleProcess.Run(output, "QuickStart", $"--smoke --out \"{dir.Path}\"");
        var r = AssertResults(dir.File("results.json"));
        Assert.Equal("OPT from config", r["model"]!.GetValue<string>());
        var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "base", "tokenizer.json")))!;
        Assert.Equal("WordLevel", tokenizer["model"]!["type"]!.GetValue<string>());
        SampleProcess.AssertPng(dir.File("loss.png"));
    }

    [Fact]
    public void ModelFolderRunsTheSameFlow()
    {
        using var dir = new TempDir();
        string model = Fixtures.Model("opt-tiny");
        string stdout = SampleProcess.Run(output, "QuickStart", $"--smoke --model \"{model}\" --out \"{dir.Path}\"");
        var r = AssertResults(dir.File("results.json"));
        Assert.Equal(model, r["model"]!.GetValue<string>());
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "pretrain-run")), "--model must skip pre-training");
        var adapter = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "adapter", "adapter_config.json")))!;
        Assert.Equal(Path.GetFullPath(model), Path.GetFullPath(adapter["base_model_name_or_path"]!.GetValue<string>()));
        Assert.Contains("trainable params:", stdout);
    }

    private static JsonObject AssertResults(string path)
    {
        var r = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        foreach (var key in new[] { "perplexity_before", "perplexity_after" })
            Assert.True(double.IsFinite(r[key]!.GetValue<double>()) && r[key]!.GetValue<double>() > 1, $"{key} = {r[key]}");
        string after = r["completion_after"]!.GetValue<string>();
        Assert.StartsWith("Computers are", r["completion_before"]!.GetValue<string>());
        Assert.StartsWith("Computers are", after);
        Assert.Equal(after, r["completion_reloaded"]!.GetValue<string>());
        Assert.Equal(after, r["completion_merged"]!.GetValue<string>());
        Assert.InRange(r["max_logit_diff_reloaded"]!.GetValue<double>(), 0, 1e-4);
        Assert.InRange(r["max_logit_diff_merged"]!.GetValue<double>(), 0, 1e-4);
        return r;
    }
}
