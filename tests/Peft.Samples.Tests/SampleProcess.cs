using System.Diagnostics;
using Xunit.Abstractions;

namespace Peft.Samples.Tests;

/// <summary>Runs a sample as its own process from its build output (samples/&lt;name&gt;/bin/&lt;cfg&gt;/&lt;tfm&gt;).</summary>
internal static class SampleProcess
{
    /// <summary>Runs <paramref name="name"/> with <paramref name="arguments"/>; asserts exit code 0 and returns standard output.</summary>
    public static string Run(ITestOutputHelper output, string name, string arguments)
    {
        string dll = Dll(name);
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

    /// <summary>Asserts <paramref name="path"/> is a PNG with a drawn plot.</summary>
    public static void AssertPng(string path)
    {
        Assert.True(File.Exists(path), path);
        var head = File.ReadAllBytes(path).Take(8).ToArray();
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, head);
        Assert.True(new FileInfo(path).Length > 5_000, "a drawn plot, not an empty image");
    }

    // samples/<name>/bin/<Configuration>/<tfm>/<name>.dll, the configuration this test assembly was built with
    private static string Dll(string name)
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
