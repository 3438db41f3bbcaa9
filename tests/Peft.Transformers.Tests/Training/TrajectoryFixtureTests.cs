using System.Text.Json.Nodes;
using Peft.Core.Safetensors;
using Peft.Testing;
using Xunit.Abstractions;

namespace Peft.Transformers.Tests.Training;

/// <summary>
/// The Trainer reproduces the reference trajectories step by step (transformers 5.17 / torch 2.11 math): every
/// logged loss within 1e-3 (measured: see the test output), the pre-clip gradient norm, the learning rate, and the
/// final adapter within 1e-4. llama-adalora runs through the model's ITrainingHooks (orthogonal regulariser and rank allocation) with no AdaLoRA-specific code in the Trainer; its rank_pattern must be identical.
/// </summary>
public class TrajectoryFixtureTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("opt-lora", false)]
    [InlineData("bert-lora-seqcls", false)]
    [InlineData("llama-adalora", false)]
    // the CUDA-graph step's body (TrainingArguments.CudaGraphs) run eagerly: torch's capturable AdamW arithmetic, the
    // mask path for every given attention mask, the method's loss term and hooks around it
    [InlineData("opt-lora", true)]
    [InlineData("bert-lora-seqcls", true)]
    [InlineData("llama-adalora", true)]
    public void ReplaysTheReferenceTrajectory(string name, bool graphForm)
    {
        using var tmp = new TempDir();
        var r = TrajectoryReplay.Run(name, tmp.Path, graphForm);
        var losses = r.Trajectory["loss_per_step"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
        var norms = r.Trajectory["grad_norm_before_clip_per_step"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
        var lrs = r.Trajectory["lr_used_per_step"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
        Assert.Equal(losses.Length, r.StepLogs.Count);
        double maxLoss = 0, maxNorm = 0;
        for (int k = 0; k < losses.Length; k++)
        {
            var log = r.StepLogs[k];
            Assert.Equal(k + 1, (int)log["step"]);
            maxLoss = Math.Max(maxLoss, Math.Abs(log["loss"] - losses[k]));
            maxNorm = Math.Max(maxNorm, Math.Abs(log["grad_norm"] - norms[k]) / norms[k]);
            Assert.True(Math.Abs(log["loss"] - losses[k]) < 1e-3, $"{name} step {k}: loss {log["loss"]} vs reference {losses[k]}");
            Assert.True(Math.Abs(log["grad_norm"] - norms[k]) <= 1e-3 * norms[k], $"{name} step {k}: grad_norm {log["grad_norm"]} vs reference {norms[k]}");
            // HF logs the scheduler's lr after scheduler.step(): the lr the next step uses.
            double next = k + 1 < lrs.Length ? lrs[k + 1] : 0.0;
            Assert.True(Math.Abs(log["learning_rate"] - next) < 1e-12, $"{name} step {k}: logged learning_rate {log["learning_rate"]} vs lr of step {k + 1} {next}");
        }
        output.WriteLine($"{name}{(graphForm ? " (graph form)" : "")}: max |loss - ref| = {maxLoss:E2}, max relative grad_norm error = {maxNorm:E2}");
        double maxW = CompareAdapters(r.FinalAdapter, r.SavedAdapter, name);
        output.WriteLine($"{name}: max |final adapter - ref| = {maxW:E2}");
        CompareRankPattern(r.FinalAdapter, r.SavedAdapter);
    }

    internal static double CompareAdapters(string expectedDir, string actualDir, string what, double atol = 1e-4)
    {
        using var expected = SafetensorsFile.Open(Path.Combine(expectedDir, "adapter_model.safetensors"));
        using var actual = SafetensorsFile.Open(Path.Combine(actualDir, "adapter_model.safetensors"));
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        double max = 0;
        foreach (var key in expected.Keys)
        {
            using var e = expected.GetTensor(key);
            using var a = actual.GetTensor(key);
            Assert.Equal(e.shape, a.shape);                       // AdaLoRA layers trimmed to rank 0 hold empty tensors
            if (e.numel() == 0) continue;
            using var d = (e - a).abs().max();
            max = Math.Max(max, d.item<float>());
            TensorAssert.Close(e, a, atol, what: $"{what} {key}");
        }
        return max;
    }

    private static void CompareRankPattern(string expectedDir, string actualDir)
    {
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(expectedDir, "adapter_config.json")))!["rank_pattern"];
        if (expected is not JsonObject { Count: > 0 }) return;
        var actual = JsonNode.Parse(File.ReadAllText(Path.Combine(actualDir, "adapter_config.json")))!["rank_pattern"];
        Assert.True(JsonNode.DeepEquals(expected, actual), $"rank_pattern {actual?.ToJsonString()} vs reference {expected.ToJsonString()}");
    }
}
