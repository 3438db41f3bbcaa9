using System.Text;
using Peft.Core.Distributed;

namespace Peft.Core.Tests.Distributed;

public class TcpRendezvousTests
{
    private static DistributedEnvironment Env(int rank, int world, int port, double seconds = 10) =>
        new(rank, world, rank, "127.0.0.1", port, TimeSpan.FromSeconds(seconds));

    [Fact]
    public void RankZerosPayloadReachesEveryRankAndACleanExitIsNoFailure()
    {
        int port = ProcessLauncher.FreePort();
        var lost = new List<string>();
        var sessions = new TcpRendezvous[3];
        var errors = new Exception?[3];   // a rank's failure is asserted here, not left to crash the test host on its thread
        var threads = Enumerable.Range(0, 3).Select(r => new Thread(() =>
        {
            try { sessions[r] = TcpRendezvous.Start(Env(r, 3, port), () => Encoding.UTF8.GetBytes("nccl-id"), m => { lock (lost) lost.Add(m); }); }
            catch (Exception e) { errors[r] = e; }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.All(errors, Assert.Null);
        Assert.All(sessions, s => Assert.Equal("nccl-id", Encoding.UTF8.GetString(s.Payload)));
        foreach (var s in sessions) s.Dispose();
        Thread.Sleep(300);
        Assert.Empty(lost);
    }

    [Fact]
    public void AMissingRankFailsRendezvousWithinTheTimeoutNamingIt()
    {
        int port = ProcessLauncher.FreePort();
        var e = Assert.Throws<CollectiveException>(() => TcpRendezvous.Start(Env(0, 3, port, 0.5), () => [], _ => { }));
        Assert.Contains("ranks [1, 2] did not join 127.0.0.1:", e.Message);
        var c = Assert.Throws<CollectiveException>(() => TcpRendezvous.Start(Env(1, 2, ProcessLauncher.FreePort(), 0.5), () => [], _ => { }));
        Assert.Contains("rank 1/2: rendezvous failed: rank 0 did not accept", c.Message);
    }

    [Fact]
    public void ASilentPeerIsReportedAfterTheTimeout()
    {
        // Rank 1 is a raw socket that joins and then says nothing (a hung process): rank 0 reports it. The timeout (join
        // and silence alike) is 3 s, so a loaded CI machine still joins in time; the server thread's failure is
        // re-thrown here, never left to crash the test host as an unhandled exception on its thread.
        int port = ProcessLauncher.FreePort();
        string? lost = null;
        Exception? serverError = null;
        using var done = new ManualResetEventSlim();
        TcpRendezvous? zero = null;
        var server = new Thread(() =>
        {
            try { zero = TcpRendezvous.Start(Env(0, 2, port, 3.0), () => [1, 2, 3], m => { lost = m; done.Set(); }); }
            catch (Exception e) { serverError = e; }
        });
        server.Start();
        using var raw = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        for (int i = 0; ; i++)
        {
            try { raw.Connect("127.0.0.1", port); break; }
            catch (System.Net.Sockets.SocketException) when (i < 50) { Thread.Sleep(50); }
        }
        raw.Send([(byte)'J', 4, 0, 0, 0, 1, 0, 0, 0]);
        server.Join();
        Assert.Null(serverError);
        Assert.True(done.Wait(TimeSpan.FromSeconds(15)), "no report of the silent rank");
        Assert.Equal("rank 0/2: rank 1 sent nothing for 3 s (hung?)", lost);
        zero!.Dispose();
    }
}
