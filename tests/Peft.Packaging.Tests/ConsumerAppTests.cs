using System.Diagnostics;
using Peft.Testing;
using Xunit.Abstractions;

namespace Peft.Packaging.Tests;

/// <summary>
/// Packs the four libraries into a local folder feed and builds + runs a console app outside the solution that
/// references them by version (not by project) plus the libtorch CPU runtime, as a user's <c>dotnet add package</c>
/// would. The restore uses only that feed and the NuGet source of the repository's nuget.config.
/// </summary>
public class ConsumerAppTests(ITestOutputHelper output)
{
    private static readonly string[] Libraries = ["Peft.Core", "Peft.Datasets", "Peft.Evaluate", "Peft.Transformers"];

    [Fact]
    public void PackedPackagesAreConsumedByASeparateApp()
    {
        string repo = RepositoryRoot();
        using var dir = new TempDir();
        string feed = Directory.CreateDirectory(dir.File("feed")).FullName;
        string app = Directory.CreateDirectory(dir.File("app")).FullName;
        // a version of its own per run, so the global packages folder never serves an older pack
        string version = $"0.0.0-ci.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";

        foreach (var lib in Libraries)
            Dotnet(repo, $"pack src/{lib}/{lib}.csproj -c Release -o \"{feed}\" -p:PackageVersion={version} -nologo");
        foreach (var lib in Libraries)
        {
            Assert.True(File.Exists(Path.Combine(feed, $"{lib}.{version}.nupkg")), $"{lib} package");
            Assert.True(File.Exists(Path.Combine(feed, $"{lib}.{version}.snupkg")), $"{lib} symbols package");
        }

        string nugetOrg = File.ReadAllLines(Path.Combine(repo, "nuget.config")).Single(l => l.Contains("<add key=")).Trim();
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{feed}" />
                {nugetOrg}
              </packageSources>
            </configuration>
            """);
        string refs = string.Join(Environment.NewLine, Libraries.Select(l => $"""    <PackageReference Include="{l}" Version="{version}" />"""));
        File.WriteAllText(Path.Combine(app, "Consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
              </PropertyGroup>
              <ItemGroup>
            {refs}
                <PackageReference Include="libtorch-cpu-linux-x64" Version="{CentralVersion(repo, "libtorch-cpu-linux-x64")}" />
              </ItemGroup>
            </Project>
            """);
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Consumer", "Program.cs.txt"), Path.Combine(app, "Program.cs"));

        // no -nologo here: `dotnet run` passes options it does not know on to the app
        string outText = Dotnet(app, $"run -c Release -- \"{app}\"");
        Assert.Contains("consumer ok", outText);
        Assert.True(File.Exists(Path.Combine(app, "adapter", "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(app, "adapter", "adapter_config.json")));
        Assert.False(Directory.Exists(Path.Combine(app, "obj", "Peft.Core")), "referenced as a package, not a project");
    }

    private string Dotnet(string workingDir, string arguments)
    {
        var psi = new ProcessStartInfo("dotnet", arguments)
        {
            WorkingDirectory = workingDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        output.WriteLine($"$ dotnet {arguments}\n{stdout}{stderr.Result}");
        Assert.True(p.ExitCode == 0, $"dotnet {arguments} exited with {p.ExitCode}:\n{stdout}\n{stderr.Result}");
        return stdout;
    }

    private static string CentralVersion(string repo, string package)
    {
        var doc = System.Xml.Linq.XDocument.Load(Path.Combine(repo, "Directory.Packages.props"));
        return doc.Descendants("PackageVersion").Single(e => (string?)e.Attribute("Include") == package).Attribute("Version")!.Value;
    }

    private static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Peft.sln"))) return d.FullName;
        throw new DirectoryNotFoundException($"no Peft.sln above {AppContext.BaseDirectory}");
    }
}
