using System.Text;
using Peft.Core.Distributed;

namespace Peft.Core.Tests;

/// <summary>
/// Entry point of the test assembly (GenerateProgramFile is off): <c>dotnet Peft.Core.Tests.dll dist-child DIR SECONDS</c>
/// joins a TCP rendezvous from torchrun's environment, writes <c>DIR/ready-RANK</c>, then waits SECONDS (standing in for
/// a long collective) and leaves cleanly; when a peer dies, the watchdog writes <c>DIR/lost-RANK</c> and ends the
/// process as <see cref="ProcessGroup"/> does.
/// </summary>
public static class Program
{
    /// <summary>Child-process entry; the test runner does not use it.</summary>
    public static int Main(string[] args)
    {
        if (args.Length == 3 && args[0] == "dist-child")
        {
            var env = DistributedEnvironment.FromEnvironment();
            string dir = args[1];
            using var r = TcpRendezvous.Start(env, () => Encoding.UTF8.GetBytes("payload-from-0"), msg =>
            {
                File.WriteAllText(Path.Combine(dir, $"lost-{env.Rank}"), msg);
                ProcessGroup.ExitOnPeerLost(msg, null);
            });
            File.WriteAllText(Path.Combine(dir, $"ready-{env.Rank}"), Encoding.UTF8.GetString(r.Payload));
            Thread.Sleep(TimeSpan.FromSeconds(double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture)));
            return 0;
        }
        Console.Error.WriteLine("usage: dist-child DIR SECONDS");
        return 2;
    }
}
