using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Peft.Core.Distributed;

/// <summary>Settings of <see cref="ProcessLauncher.Run"/> (torchrun's single-node options).</summary>
/// <param name="FileName">The program each rank runs (a <c>.dll</c> is run with <c>dotnet</c>).</param>
/// <param name="Arguments">Its arguments.</param>
/// <param name="NprocPerNode">Ranks to start (torchrun <c>--nproc-per-node</c>).</param>
public sealed record LaunchOptions(string FileName, IReadOnlyList<string> Arguments, int NprocPerNode)
{
    /// <summary>Rendezvous host (torchrun <c>--master-addr</c>).</summary>
    public string MasterAddr { get; init; } = "127.0.0.1";

    /// <summary>Rendezvous port; 0 picks a free one (torchrun <c>--master-port</c>).</summary>
    public int MasterPort { get; init; }

    /// <summary>Give rank i only GPU i through <c>CUDA_VISIBLE_DEVICES</c> (the i-th entry of the parent's list when it has one).</summary>
    public bool BindGpus { get; init; } = true;

    /// <summary>When a rank fails: stop the others at once (torchrun) or wait up to <see cref="FailureGrace"/> for them to exit on their own (their watchdogs).</summary>
    public bool StopOthersOnFailure { get; init; } = true;

    /// <summary>How long the surviving ranks get to exit after a failure before they are killed.</summary>
    public TimeSpan FailureGrace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Extra environment for every rank.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();
}

/// <summary>What <see cref="ProcessLauncher.Run"/> observed.</summary>
/// <param name="ExitCode">0 when every rank succeeded, else the first failed rank's code.</param>
/// <param name="ExitCodes">Each rank's exit code (-1: killed by the launcher).</param>
/// <param name="FirstFailedRank">The rank that failed first, or null.</param>
/// <param name="Message">A summary line (names the failed rank and code).</param>
public sealed record LaunchResult(int ExitCode, IReadOnlyList<int> ExitCodes, int? FirstFailedRank, string Message);

/// <summary>
/// Starts N ranks of a program on this machine with torchrun's environment (<c>RANK</c>, <c>WORLD_SIZE</c>,
/// <c>LOCAL_RANK</c>, <c>LOCAL_WORLD_SIZE</c>, <c>MASTER_ADDR</c>, <c>MASTER_PORT</c>) and waits for them; the first
/// rank that exits with a non-zero code fails the job: the others are stopped (or, with
/// <see cref="LaunchOptions.StopOthersOnFailure"/> off, given <see cref="LaunchOptions.FailureGrace"/> to exit by
/// themselves first). Children inherit stdout / stderr; each line they print is theirs (no prefixes added).
/// </summary>
public static class ProcessLauncher
{
    /// <summary>The environment of rank <paramref name="rank"/> (what a child sees, beside the parent's own).</summary>
    public static Dictionary<string, string> RankEnvironment(LaunchOptions o, int rank, int port, string? parentVisibleDevices)
    {
        ArgumentNullException.ThrowIfNull(o);
        var env = new Dictionary<string, string>(o.Environment)
        {
            ["RANK"] = rank.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["LOCAL_RANK"] = rank.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["WORLD_SIZE"] = o.NprocPerNode.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["LOCAL_WORLD_SIZE"] = o.NprocPerNode.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["MASTER_ADDR"] = o.MasterAddr,
            ["MASTER_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (o.BindGpus)
        {
            var list = parentVisibleDevices?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (list is { Length: > 0 } && rank >= list.Length)
                throw new ArgumentException($"CUDA_VISIBLE_DEVICES = '{parentVisibleDevices}' names {list.Length} GPUs; rank {rank} has none (--nproc-per-node {o.NprocPerNode})");
            env["CUDA_VISIBLE_DEVICES"] = list is { Length: > 0 } ? list[rank] : rank.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return env;
    }

    /// <summary>A free TCP port on the loopback interface.</summary>
    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>Runs the job; returns when every rank has exited (or been stopped).</summary>
    /// <param name="o">The job.</param>
    /// <param name="log">Receives the launcher's own lines (default stderr).</param>
    /// <param name="started">Called with each rank's process once started (tests use it to kill one).</param>
    public static LaunchResult Run(LaunchOptions o, Action<string>? log = null, Action<int, Process>? started = null)
    {
        ArgumentNullException.ThrowIfNull(o);
        if (o.NprocPerNode < 1) throw new ArgumentOutOfRangeException(nameof(o), $"NprocPerNode = {o.NprocPerNode}; at least 1");
        log ??= Console.Error.WriteLine;
        int port = o.MasterPort > 0 ? o.MasterPort : FreePort();
        var visible = System.Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES");
        var procs = new Process[o.NprocPerNode];
        var codes = Enumerable.Repeat(int.MinValue, o.NprocPerNode).ToArray();
        try
        {
            for (int r = 0; r < procs.Length; r++)
            {
                var psi = StartInfo(o);
                foreach (var (k, v) in RankEnvironment(o, r, port, visible)) psi.Environment[k] = v;
                procs[r] = Process.Start(psi) ?? throw new InvalidOperationException($"rank {r}: {o.FileName} did not start");
                started?.Invoke(r, procs[r]);
            }
            return Wait(o, procs, codes, log);
        }
        finally
        {
            foreach (var p in procs)
            {
                if (p is null) continue;
                try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                p.Dispose();
            }
        }
    }

    private static LaunchResult Wait(LaunchOptions o, Process[] procs, int[] codes, Action<string> log)
    {
        int? failed = null;
        DateTime? killAt = null;
        while (codes.Any(c => c == int.MinValue))
        {
            // Ranks seen exited in this pass, earliest exit first (a killed rank's peers exit right after it).
            var exited = Enumerable.Range(0, procs.Length).Where(r => codes[r] == int.MinValue && procs[r].HasExited).OrderBy(r => procs[r].ExitTime).ToList();
            foreach (int r in exited)
            {
                procs[r].WaitForExit();
                codes[r] = procs[r].ExitCode;
                if (codes[r] == 0 || failed is not null) continue;
                failed = r;
                log($"[peft-run] rank {r} (pid {procs[r].Id}) exited with code {codes[r]}; " +
                    (o.StopOthersOnFailure ? "stopping the other ranks" : $"the other ranks get {o.FailureGrace.TotalSeconds:0.#} s to exit"));
                killAt = DateTime.UtcNow + (o.StopOthersOnFailure ? TimeSpan.Zero : o.FailureGrace);
            }
            if (killAt is { } t && DateTime.UtcNow >= t)
            {
                for (int r = 0; r < procs.Length; r++)
                {
                    if (codes[r] != int.MinValue) continue;
                    try { procs[r].Kill(entireProcessTree: true); procs[r].WaitForExit(); } catch (InvalidOperationException) { }
                    codes[r] = -1;
                }
            }
            Thread.Sleep(20);
        }
        string msg = failed is { } f
            ? $"[peft-run] job failed: rank {f} exited with code {codes[f]}; exit codes [{string.Join(", ", codes)}]"
            : $"[peft-run] all {procs.Length} ranks succeeded";
        log(msg);
        return new LaunchResult(failed is { } ff ? codes[ff] : 0, codes, failed, msg);
    }

    private static ProcessStartInfo StartInfo(LaunchOptions o)
    {
        bool dll = o.FileName.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);
        var psi = new ProcessStartInfo(dll ? DotnetHost() : o.FileName) { UseShellExecute = false };
        if (dll) psi.ArgumentList.Add(o.FileName);
        foreach (var a in o.Arguments) psi.ArgumentList.Add(a);
        return psi;
    }

    private static string DotnetHost() =>
        System.Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
}
