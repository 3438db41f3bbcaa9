using System.Diagnostics;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Datasets;
using Peft.Testing;
using Peft.Transformers;

namespace Peft.Fuzz;

/// <summary>
/// Kills (SIGKILL) a child process in the middle of SavePretrained (model and adapter) and dataset export, many times,
/// and checks that every file under its final name is complete and loads: writes go to a temp file renamed over the
/// target (AtomicFile), so a kill leaves at most a stray ".*.tmp" file. CI mode: 2 kills (each child start costs seconds on the shared CI box); PEFT_SLOW_TESTS=1: 40.
/// </summary>
public sealed class KillDuringSaveTests
{
    [Fact]
    public async Task A_kill_during_save_never_leaves_a_half_written_file_under_a_final_name()
    {
        bool slow = Environment.GetEnvironmentVariable("PEFT_SLOW_TESTS") == "1";
        int kills = slow ? 40 : 2;
        using var dir = new TempDir();
        var rng = new Random(16);
        int checkedFiles = 0;
        for (int k = 0; k < kills; k++)
        {
            var psi = new ProcessStartInfo("dotnet", ["exec", typeof(Program).Assembly.Location, "--save-child", dir.Path])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            using var child = new Process { StartInfo = psi };
            using var ready = new SemaphoreSlim(0);
            var stderr = new System.Text.StringBuilder();
            child.OutputDataReceived += (_, e) => { if (e.Data == "ready") ready.Release(); };
            child.ErrorDataReceived += (_, e) => { lock (stderr) stderr.AppendLine(e.Data); };
            child.Start();
            child.BeginOutputReadLine();
            child.BeginErrorReadLine();
            if (!await ready.WaitAsync(TimeSpan.FromMinutes(3)))
            {
                child.Kill(entireProcessTree: true);
                Assert.Fail($"child did not start saving: {stderr}");
            }
            await Task.Delay(rng.Next(0, 400)); // somewhere in the middle of the next round of saves
            child.Kill(entireProcessTree: true); // SIGKILL on Linux: no finally blocks, no cleanup
            await child.WaitForExitAsync();
            checkedFiles += CheckFinalFiles(dir.Path);
        }
        Assert.True(checkedFiles >= kills * 7, $"only {checkedFiles} files checked");
    }

    /// <summary>Every final-name file loads completely; returns how many were checked.</summary>
    private static int CheckFinalFiles(string dir)
    {
        int n = 0;
        using (var c = SafetensorsFile.Open(Path.Combine(dir, "model", "model.safetensors"))) { _ = c.Tensors.Count; n++; }
        AutoConfig.FromPretrained(Path.Combine(dir, "model", "config.json")); n++;
        using (var a = SafetensorsFile.Open(Path.Combine(dir, "adapter", "adapter_model.safetensors"))) { Assert.NotEmpty(a.Tensors); n++; }
        PeftConfig.FromPretrained(Path.Combine(dir, "adapter")); n++;
        Assert.Equal(2000, DatasetLoader.LoadDataset("parquet", Path.Combine(dir, "data.parquet"))["train"].NumRows); n++;
        Assert.Equal(2000, DatasetLoader.LoadDataset("json", Path.Combine(dir, "data.jsonl"))["train"].NumRows); n++;
        Assert.Equal(2000, DatasetLoader.LoadDataset("csv", Path.Combine(dir, "data.csv"))["train"].NumRows); n++;
        return n;
    }
}
