using System.Text.Json.Nodes;
using Peft.Testing;
using Xunit.Abstractions;

namespace Peft.Samples.Tests;

/// <summary>
/// Runs samples/PeftMethods in its smoke mode and checks its table (methods.json): all seven methods, finite train
/// and eval losses, a trainable fraction below the whole model, adapter files in PEFT's format whose peft_type is the
/// method's, and logits of the reloaded adapter equal to the trained one.
/// </summary>
public class PeftMethodsSmokeTests(ITestOutputHelper output)
{
    [Fact]
    public void EveryMethodTrainsSavesAndReloads()
    {
        using var dir = new TempDir();
        string stdout = SampleProcess.Run(output, "PeftMethods", $"--smoke --out \"{dir.Path}\"");
        var rows = JsonNode.Parse(File.ReadAllText(dir.File("methods.json")))!.AsArray().Select(r => r!.AsObject()).ToList();
        Assert.Equal(["LORA", "ADALORA", "IA3", "PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "BOTTLENECK"],
            rows.Select(r => r["PeftType"]!.GetValue<string>()));
        foreach (var r in rows)
        {
            string method = r["Method"]!.GetValue<string>();
            Assert.Contains(method.Split(' ')[0], stdout);                  // a table row
            Assert.True(double.IsFinite(r["TrainLoss"]!.GetValue<double>()), method);
            Assert.InRange(r["EvalLoss"]!.GetValue<double>(), 0.1, 20);
            long trainable = r["Trainable"]!.GetValue<long>(), total = r["Total"]!.GetValue<long>();
            Assert.InRange(trainable, 1, total / 5);                         // a small fraction of the model
            Assert.InRange(r["ReloadMaxDiff"]!.GetValue<double>(), 0, 1e-5);
            string adapterDir = Path.Combine(dir.Path, method.Replace(' ', '-').ToLowerInvariant());
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(adapterDir, "adapter_config.json")))!;
            Assert.Equal(r["PeftType"]!.GetValue<string>(), config["peft_type"]!.GetValue<string>());
            Assert.True(new FileInfo(Path.Combine(adapterDir, "adapter_model.safetensors")).Length > 0, method);
        }
        SampleProcess.AssertPng(dir.File("loss.png"));
        Assert.Contains("done", stdout);
    }
}
