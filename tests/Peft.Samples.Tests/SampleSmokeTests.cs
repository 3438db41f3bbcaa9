using System.Diagnostics;
using Peft.Testing;
using Xunit.Abstractions;

namespace Peft.Samples.Tests;

/// <summary>
/// Runs each sample to completion in its <c>--smoke</c> mode (a few training steps) as a separate process from its
/// build output, and checks the files it promises: the loss-curve PNG and the Trainer's JSONL log.
/// </summary>
public class SampleSmokeTests(ITestOutputHelper output)
{
    [Fact]
    public void QuickStartRunsToCompletion()
    {
        using var dir = new TempDir();
        string stdout = RunSample("QuickStart", $"--smoke --out \"{dir.Path}\"");
        Assert.Contains("done", stdout);
        AssertPng(dir.File("loss.png"));
        Assert.True(File.Exists(Path.Combine(dir.Path, "pretrain-run", "log_history.jsonl")));
        var lines = File.ReadAllLines(Path.Combine(dir.Path, "lora-run", "log_history.jsonl"));
        Assert.Contains(lines, l => l.Contains("\"loss\""));
        Assert.True(File.Exists(Path.Combine(dir.Path, "adapter", "adapter_model.safetensors")));
    }

    private static void AssertPng(string path)
    {
        Assert.True(File.Exists(path), path);
        var head = File.ReadAllBytes(path).Take(8).ToArray();
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, head);
        Assert.True(new FileInfo(path).Length > 5_000, "a drawn plot, not an empty image");
    }

    private string RunSample(string name, string arguments)
    {
        string dll = SampleDll(name);
        var psi = new ProcessStartInfo("dotnet", $"\"{dll}\" {arguments}")
        {
            WorkingDirectory = Path.GetDirectoryName(dll)!, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        output.WriteLine(stdout);
        Assert.True(p.ExitCode == 0, $"{name} {arguments} exited with {p.ExitCode}:\n{stdout}\n{stderr.Result}");
        return stdout;
    }

    // samples/<name>/bin/<Configuration>/net10.0/<name>.dll, the configuration this test assembly was built with
    private static string SampleDll(string name)
    {
        var testBin = new DirectoryInfo(AppContext.BaseDirectory); // tests/Peft.Samples.Tests/bin/<cfg>/<tfm>/
        string tfm = testBin.Name, cfg = testBin.Parent!.Name;
        for (var d = testBin; d is not null; d = d.Parent)
        {
            string dll = Path.Combine(d.FullName, "samples", name, "bin", cfg, tfm, name + ".dll");
            if (File.Exists(Path.Combine(d.FullName, "Peft.sln")))
                return File.Exists(dll) ? dll : throw new FileNotFoundException($"build {name} first: {dll} is missing", dll);
        }
        throw new DirectoryNotFoundException($"no Peft.sln above {AppContext.BaseDirectory}");
    }
}
