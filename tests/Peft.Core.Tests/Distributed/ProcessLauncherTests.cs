using System.Diagnostics;
using Peft.Core.Distributed;

namespace Peft.Core.Tests.Distributed;

public class ProcessLauncherTests
{
    private static string TempDir() => Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "peft-launch-" + Guid.NewGuid().ToString("N"))).FullName;

    [Fact]
    public void RankEnvironmentFollowsTorchrunAndBindsOneGpuPerRank()
    {
        var o = new LaunchOptions("prog", [], 3) { MasterAddr = "10.1.1.1" };
        var env = ProcessLauncher.RankEnvironment(o, 2, 29555, "4,6,7");
        Assert.Equal(("2", "2", "3", "3", "10.1.1.1", "29555", "7"),
            (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"], env["MASTER_ADDR"], env["MASTER_PORT"], env["CUDA_VISIBLE_DEVICES"]));
        Assert.Equal("1", ProcessLauncher.RankEnvironment(o, 1, 1, null)["CUDA_VISIBLE_DEVICES"]);
        Assert.False(ProcessLauncher.RankEnvironment(o with { BindGpus = false }, 1, 1, "4,6,7").ContainsKey("CUDA_VISIBLE_DEVICES"));
        var e = Assert.Throws<ArgumentException>(() => ProcessLauncher.RankEnvironment(o, 2, 1, "0,1"));
        Assert.Contains("CUDA_VISIBLE_DEVICES = '0,1' names 2 GPUs; rank 2 has none", e.Message);
    }

    [Fact]
    public void ChildrenSeeTheirVariables()
    {
        string dir = TempDir();
        try
        {
            var o = new LaunchOptions("/bin/sh", ["-c", $"echo \"$RANK $LOCAL_RANK $WORLD_SIZE $MASTER_ADDR $MASTER_PORT $CUDA_VISIBLE_DEVICES\" > {dir}/env-$RANK"], 2) { MasterPort = 29777 };
            var result = ProcessLauncher.Run(o, _ => { });
            Assert.Equal(0, result.ExitCode);
            Assert.Equal("0 0 2 127.0.0.1 29777 0", File.ReadAllText(Path.Combine(dir, "env-0")).Trim());
            Assert.Equal("1 1 2 127.0.0.1 29777 1", File.ReadAllText(Path.Combine(dir, "env-1")).Trim());
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void AFailedRankStopsTheOthersAndGivesItsCode()
    {
        var lines = new List<string>();
        var sw = Stopwatch.StartNew();
        var o = new LaunchOptions("/bin/sh", ["-c", "if [ \"$RANK\" = 1 ]; then sleep 0.2; exit 7; fi; sleep 60"], 3);
        var result = ProcessLauncher.Run(o, lines.Add);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"took {sw.Elapsed}");
        Assert.Equal((7, 1), (result.ExitCode, result.FirstFailedRank));
        Assert.Equal([-1, 7, -1], result.ExitCodes);
        Assert.Contains(lines, l => l.Contains("rank 1 (pid") && l.Contains("exited with code 7; stopping the other ranks"));
        Assert.Contains("job failed: rank 1 exited with code 7", result.Message);
    }

    [Fact]
    public void KillingOneRankMakesTheOthersExitByTheirWatchdogWithAMessage()
    {
        string dir = TempDir();
        try
        {
            var procs = new Process?[3];
            var o = new LaunchOptions(typeof(Program).Assembly.Location, ["dist-child", dir, "120"], 3)
            {
                StopOthersOnFailure = false, FailureGrace = TimeSpan.FromSeconds(60), BindGpus = false,
                Environment = new Dictionary<string, string> { ["PEFT_DIST_TIMEOUT"] = "60" },
            };
            LaunchResult? result = null;
            var job = new Thread(() => result = ProcessLauncher.Run(o, _ => { }, (r, p) => procs[r] = p));
            job.Start();
            var ready = Stopwatch.StartNew();
            while (Enumerable.Range(0, 3).Any(r => !File.Exists(Path.Combine(dir, $"ready-{r}"))))
            {
                Assert.True(ready.Elapsed < TimeSpan.FromSeconds(60), "the ranks did not finish the rendezvous");
                Assert.True(job.IsAlive, "the job ended before the rendezvous");
                Thread.Sleep(50);
            }
            Assert.Equal("payload-from-0", File.ReadAllText(Path.Combine(dir, "ready-2")));
            var killed = Stopwatch.StartNew();
            procs[1]!.Kill();
            Assert.True(job.Join(TimeSpan.FromSeconds(30)), "the surviving ranks did not exit");
            Assert.NotNull(result);
            Assert.True(killed.Elapsed < TimeSpan.FromSeconds(30));
            Assert.Equal(1, result.FirstFailedRank);
            Assert.Equal(ProcessGroup.PeerLostExitCode, result.ExitCodes[0]);
            Assert.Equal(ProcessGroup.PeerLostExitCode, result.ExitCodes[2]);
            Assert.Equal("rank 0/3: rank 1 lost: its connection closed (the process died or was killed)", File.ReadAllText(Path.Combine(dir, "lost-0")));
            Assert.Equal("rank 2/3: rank 0 reports: rank 1 lost: its connection closed (the process died or was killed)", File.ReadAllText(Path.Combine(dir, "lost-2")));
        }
        finally { Directory.Delete(dir, true); }
    }
}
