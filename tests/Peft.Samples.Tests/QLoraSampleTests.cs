using System.Text.Json;
using Peft.Testing;
using Xunit.Abstractions;

namespace Peft.Samples.Tests;

/// <summary>
/// samples/QLora in --smoke mode: the MemoryEstimator tables for the shipped configs, the NF4 footprint of the loaded
/// base against fp32 and against the estimator, and the QLoRA adapter reloading onto a fresh NF4 base with equal logits.
/// </summary>
public class QLoraSampleTests(ITestOutputHelper output)
{
    [Fact]
    public void SmokeRunQuantizesTrainsAndReloads()
    {
        using var dir = new TempDir();
        string stdout = SampleProcess.Run(output, "QLora", $"--smoke --out \"{dir.Path}\"");
        foreach (var model in new[] { "opt-6.7b", "llama-2-7b", "qwen2.5-0.5" })
            Assert.Contains(model, stdout);
        Assert.Contains("QLoRA", stdout);
        Assert.Contains("done", stdout);

        var r = SampleProcess.Results(dir.Path);
        long fp32 = r.GetProperty("footprint_fp32_bytes").GetInt64(), nf4 = r.GetProperty("footprint_nf4_bytes").GetInt64();
        Assert.True(nf4 * 3 < fp32, $"nf4 {nf4} B vs fp32 {fp32} B");
        Assert.InRange(r.GetProperty("estimated_nf4_bytes").GetInt64() / (double)nf4, 0.99, 1.01);
        Assert.True(r.GetProperty("quantized_linears").GetInt32() > 0);
        double pplFp32 = SampleProcess.Finite(r, "perplexity_fp32"), pplNf4 = SampleProcess.Finite(r, "perplexity_before");
        Assert.InRange(pplNf4 / pplFp32, 0.9, 1.1);                 // NF4 keeps the model, within a few percent
        Assert.True(SampleProcess.Finite(r, "perplexity_after") > 1);
        Assert.Equal(0.0, SampleProcess.Finite(r, "reload_max_abs_logit_diff"), 5);

        // the adapter is an ordinary LoRA folder (no quantization settings), loadable on a full-precision base
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.Path, "adapter", "adapter_config.json")));
        Assert.Equal("LORA", config.RootElement.GetProperty("peft_type").GetString());
        Assert.True(File.Exists(Path.Combine(dir.Path, "adapter", "adapter_model.safetensors")));
        SampleProcess.AssertPng(Path.Combine(dir.Path, "loss.png"));
        SampleProcess.AssertLossLogged(Path.Combine(dir.Path, "qlora-run"));
    }
}
