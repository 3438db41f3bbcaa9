using Peft.Core.Distributed.Nccl;

namespace Peft.Core.Distributed;

/// <summary>
/// Starts this process's rank of an NCCL group from torchrun's environment (PyTorch
/// <c>dist.init_process_group("nccl")</c>): TCP rendezvous with rank 0 (<see cref="TcpRendezvous"/>), NCCL unique id
/// from rank 0, <c>ncclCommInitRank</c> on this rank's GPU, and a watchdog that ends the process with a message naming
/// the lost rank when any rank dies (an NCCL call waiting for a dead peer would otherwise block forever).
/// </summary>
public static class ProcessGroup
{
    /// <summary>Exit code of a rank ended by the watchdog.</summary>
    public const int PeerLostExitCode = 3;

    /// <summary>
    /// The CUDA device index of this rank: 0 when <c>CUDA_VISIBLE_DEVICES</c> names exactly one GPU (peft-run binds
    /// one per rank), else <see cref="DistributedEnvironment.LocalRank"/>.
    /// </summary>
    public static int CudaDeviceIndex(DistributedEnvironment env, Func<string, string?>? getEnv = null)
    {
        ArgumentNullException.ThrowIfNull(env);
        var visible = (getEnv ?? Environment.GetEnvironmentVariable)("CUDA_VISIBLE_DEVICES");
        return visible is { Length: > 0 } && visible.Split(',', StringSplitOptions.RemoveEmptyEntries).Length == 1 ? 0 : env.LocalRank;
    }

    /// <summary>
    /// Joins the NCCL group described by <paramref name="env"/> (default: the process environment). Blocks until every
    /// rank has joined or the timeout passes (<see cref="CollectiveException"/> naming the missing ranks).
    /// </summary>
    /// <param name="env">The rank's environment.</param>
    /// <param name="onPeerLost">
    /// What to do when a rank dies (default: print the message to stderr, abort the communicator, exit with
    /// <see cref="PeerLostExitCode"/>).
    /// </param>
    /// <param name="api">The NCCL library (default <see cref="NcclNative.Load"/>).</param>
    public static ICollectives InitNccl(DistributedEnvironment? env = null, Action<string>? onPeerLost = null, INcclApi? api = null)
    {
        env ??= DistributedEnvironment.FromEnvironment();
        api ??= NcclNative.Load();
        NcclCollectives? comm = null;
        var lost = onPeerLost ?? (msg => ExitOnPeerLost(msg, () => comm?.Abort()));
        var rendezvous = TcpRendezvous.Start(env, () => NcclCollectives.NewUniqueId(api, env.Rank, env.WorldSize).ToArray(), lost);
        try
        {
            comm = NcclCollectives.Create(api, NcclUniqueId.FromArray(rendezvous.Payload), env.Rank, env.WorldSize, CudaDeviceIndex(env));
            return new Group(comm, rendezvous);
        }
        catch
        {
            rendezvous.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The default reaction to a lost rank: message on stderr, <paramref name="abort"/> (given at most 10 s), then an
    /// immediate process exit with <see cref="PeerLostExitCode"/> (libc <c>_exit</c> on Linux: the main thread may be
    /// blocked in a CUDA call that waits for the dead peer, and exit handlers that synchronise the device would hang).
    /// </summary>
    public static void ExitOnPeerLost(string message, Action? abort)
    {
        s_stopping = true;
        Console.Error.WriteLine($"[peft-dist] FATAL: {message}; this rank stops (exit code {PeerLostExitCode})");
        Console.Error.Flush();
        Console.Out.Flush();
        if (abort is not null)
        {
            var t = new Thread(() => { try { abort(); } catch (Exception e) { Console.Error.WriteLine($"[peft-dist] abort failed: {e.Message}"); } }) { IsBackground = true };
            t.Start();
            t.Join(TimeSpan.FromSeconds(10));
        }
        if (OperatingSystem.IsLinux()) LibcExit(PeerLostExitCode);
        Environment.Exit(PeerLostExitCode);
    }

    // Set once a lost peer is being handled: a collective that fails afterwards (the communicator was just aborted)
    // parks its thread so the watchdog's exit with PeerLostExitCode wins, instead of an unhandled exception aborting
    // the process with SIGABRT (134) first — seen on the two-GPU machine.
    private static volatile bool s_stopping;

    private static void Collective(Action call)
    {
        try
        {
            call();
        }
        catch (CollectiveException) when (s_stopping)
        {
            Thread.Sleep(Timeout.Infinite);
            throw;
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "_exit")]
    private static extern void LibcExit(int status);

    private sealed class Group(NcclCollectives comm, TcpRendezvous rendezvous) : ICollectives
    {
        public int Rank => comm.Rank;

        public int WorldSize => comm.WorldSize;

        public TorchSharp.torch.Device Device => comm.Device;

        public void AllReduce(TorchSharp.torch.Tensor tensor, ReduceOp op = ReduceOp.Sum) => Collective(() => comm.AllReduce(tensor, op));

        public void Broadcast(TorchSharp.torch.Tensor tensor, int root = 0) => Collective(() => comm.Broadcast(tensor, root));

        public void AllGather(TorchSharp.torch.Tensor input, TorchSharp.torch.Tensor output) => Collective(() => comm.AllGather(input, output));

        public void ReduceScatter(TorchSharp.torch.Tensor input, TorchSharp.torch.Tensor output, ReduceOp op = ReduceOp.Sum) => Collective(() => comm.ReduceScatter(input, output, op));

        public void Barrier() => Collective(comm.Barrier);

        public void Dispose()
        {
            try { comm.Dispose(); }
            finally { rendezvous.Dispose(); }
        }
    }
}
