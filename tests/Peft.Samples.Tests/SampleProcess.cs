using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;

namespace Peft.Samples.Tests;

/// <summary>
/// Runs a sample's build output as its own process (as a user runs it) and reads what it wrote: its console output
/// and its <c>results.json</c>. libtorch runs with one thread (OMP_NUM_THREADS=1): on a CI machine shared with other
/// jobs, OpenMP's spinning barriers make two-thread runs of these tiny models many times slower.
/// </summary>
internal static class SampleProcess
{
    /// <summary>Runs samples/<paramref name="name"/> with <paramref name="arguments"/>; asserts exit code 0 and returns stdout.</summary>
    public static string Run(ITestOutputHelper output, string name, string arguments)
    {
        string dll = SampleDll(name);
        var psi = new ProcessStartInfo("dotnet", $"\"{dll}\" {arguments}")
        {
            WorkingDirectory = Path.GetDirectoryName(dll)!, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment["OMP_NUM_THREADS"] = "1";
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        output.WriteLine(stdout);
        Assert.True(p.ExitCode == 0, $"{name} {arguments} exited with {p.ExitCode}:\n{stdout}\n{stderr.Result}");
        return stdout;
    }

    /// <summary>The sample's results.json in <paramref name="dir"/>, parsed.</summary>
    public static JsonElement Results(string dir)
    {
        string path = Path.Combine(dir, "results.json");
        Assert.True(File.Exists(path), path);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.Clone();
    }

    /// <summary>A finite double at <paramref name="key"/> of <paramref name="e"/>.</summary>
    public static double Finite(JsonElement e, string key)
    {
        double v = e.GetProperty(key).GetDouble();
        Assert.True(double.IsFinite(v), $"{key} = {v}");
        return v;
    }

    /// <summary>A drawn PNG (signature and a size no empty canvas has).</summary>
    public static void AssertPng(string path)
    {
        Assert.True(File.Exists(path), path);
        var head = File.ReadAllBytes(path).Take(8).ToArray();
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, head);
        Assert.True(new FileInfo(path).Length > 5_000, "a drawn plot, not an empty image");
    }

    /// <summary>The Trainer's JSONL log of <paramref name="runDir"/>: at least one line with a finite "loss".</summary>
    public static void AssertLossLogged(string runDir)
    {
        string path = Path.Combine(runDir, "log_history.jsonl");
        Assert.True(File.Exists(path), path);
        var losses = File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("loss", out _)).Select(e => e.GetProperty("loss").GetDouble()).ToList();
        Assert.NotEmpty(losses);
        Assert.All(losses, l => Assert.True(double.IsFinite(l) && l > 0, $"loss {l}"));
    }

    /// <summary>The data folder next to the sample's build output (the files it reads).</summary>
    public static string DataDir(string name) => Path.Combine(Path.GetDirectoryName(SampleDll(name))!, "data");

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
