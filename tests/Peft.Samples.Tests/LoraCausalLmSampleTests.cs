using System.Text.Json;
using Peft.Testing;
using Xunit.Abstractions;

namespace Peft.Samples.Tests;

/// <summary>
/// samples/LoraCausalLm in --smoke mode: perplexities, the adapter folder in PEFT's format with the seed's LoRA
/// settings, and the reloaded adapter reproducing the trained model's logits and generation.
/// </summary>
public class LoraCausalLmSampleTests(ITestOutputHelper output)
{
    [Fact]
    public void SmokeRunSavesAnAdapterThatReloadsWithEqualLogits()
    {
        using var dir = new TempDir();
        string stdout = SampleProcess.Run(output, "LoraCausalLm", $"--smoke --out \"{dir.Path}\"");
        Assert.Contains("trainable params: ", stdout); // PEFT's print_trainable_parameters line
        Assert.Contains("done", stdout);

        var results = SampleProcess.Results(dir.Path);
        Assert.True(SampleProcess.Finite(results, "perplexity_before") > 1);
        Assert.True(SampleProcess.Finite(results, "perplexity_after") > 1);
        Assert.Equal(0.0, SampleProcess.Finite(results, "reload_max_abs_logit_diff"), 5);
        Assert.Equal(results.GetProperty("completion_after").GetString(), results.GetProperty("completion_reloaded").GetString());

        string adapter = Path.Combine(dir.Path, "adapter");
        Assert.True(File.Exists(Path.Combine(adapter, "adapter_model.safetensors")));
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(adapter, "adapter_config.json")));
        var c = config.RootElement;
        Assert.Equal("LORA", c.GetProperty("peft_type").GetString());
        Assert.Equal("CAUSAL_LM", c.GetProperty("task_type").GetString());
        Assert.Equal(8, c.GetProperty("r").GetInt32());
        Assert.Equal(16, c.GetProperty("lora_alpha").GetDouble());
        Assert.Equal(0.1, c.GetProperty("lora_dropout").GetDouble());
        Assert.Equal("none", c.GetProperty("bias").GetString());
        Assert.Equal(["q_proj", "v_proj"], c.GetProperty("target_modules").EnumerateArray().Select(t => t.GetString()).Order());

        SampleProcess.AssertPng(Path.Combine(dir.Path, "loss.png"));
        SampleProcess.AssertLossLogged(Path.Combine(dir.Path, "pretrain-run"));
        SampleProcess.AssertLossLogged(Path.Combine(dir.Path, "lora-run"));
    }
}
