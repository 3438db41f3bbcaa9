using System.Runtime.CompilerServices;
using Peft.Transformers.Hub;

namespace Peft.Transformers.Tests;

/// <summary>
/// Entry point of the test assembly (GenerateProgramFile is off): <c>dotnet exec Peft.Transformers.Tests.dll hub-child
/// ENDPOINT CACHE REPO FILE</c> downloads one file, so a test can race a second process against itself.
/// </summary>
public static class Program
{
    /// <summary>Child-process entry; the test runner does not use it.</summary>
    public static int Main(string[] args)
    {
        if (args.Length == 5 && args[0] == "hub-child")
        {
            var path = HubDownloader.DownloadFile(args[3], args[4], new HubDownloadOptions { Endpoint = args[1], CacheDir = args[2] });
            Console.WriteLine(path);
            return 0;
        }
        Console.Error.WriteLine("usage: hub-child ENDPOINT CACHE REPO FILE");
        return 2;
    }

    /// <summary>No test may reach the real Hub: an unset endpoint points at a closed loopback port (fails at once).</summary>
    [ModuleInitializer]
    internal static void NoRealHub()
    {
        Environment.SetEnvironmentVariable("HF_ENDPOINT", "http://127.0.0.1:9");
        Environment.SetEnvironmentVariable("HF_TOKEN", null);
    }
}
