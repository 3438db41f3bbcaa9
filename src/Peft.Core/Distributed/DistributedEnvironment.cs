namespace Peft.Core.Distributed;

/// <summary>
/// torchrun's environment contract: <c>RANK</c>, <c>WORLD_SIZE</c>, <c>LOCAL_RANK</c>, <c>MASTER_ADDR</c>,
/// <c>MASTER_PORT</c> (set by <see cref="ProcessLauncher"/> / <c>peft-run</c>, or by torchrun itself), plus
/// <c>PEFT_DIST_TIMEOUT</c> (seconds a rank waits for the others at rendezvous and for a silent peer; default 300).
/// </summary>
/// <param name="Rank">Global rank.</param>
/// <param name="WorldSize">Number of ranks.</param>
/// <param name="LocalRank">Rank on this machine (the GPU index before CUDA_VISIBLE_DEVICES binding).</param>
/// <param name="MasterAddr">Host of rank 0's rendezvous listener.</param>
/// <param name="MasterPort">Its TCP port.</param>
/// <param name="Timeout">Rendezvous and peer-silence limit.</param>
public sealed record DistributedEnvironment(int Rank, int WorldSize, int LocalRank, string MasterAddr, int MasterPort, TimeSpan Timeout)
{
    /// <summary>A single process (no variables set).</summary>
    public static DistributedEnvironment Single { get; } = new(0, 1, 0, "127.0.0.1", 29500, TimeSpan.FromSeconds(300));

    /// <summary>Whether more than one rank takes part.</summary>
    public bool IsDistributed => WorldSize > 1;

    /// <summary>
    /// Reads the variables (<paramref name="env"/> defaults to the process environment). Without <c>WORLD_SIZE</c>
    /// the result is <see cref="Single"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A variable is missing or malformed; the message names it and its value.</exception>
    public static DistributedEnvironment FromEnvironment(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        if (env("WORLD_SIZE") is not { Length: > 0 }) return Single;
        int world = Int(env, "WORLD_SIZE", 1, int.MaxValue);
        int rank = Int(env, "RANK", 0, world - 1);
        int local = env("LOCAL_RANK") is { Length: > 0 } ? Int(env, "LOCAL_RANK", 0, world - 1) : rank;
        string addr = env("MASTER_ADDR") is { Length: > 0 } a ? a : world > 1 ? throw new ArgumentException("MASTER_ADDR is not set (WORLD_SIZE > 1)") : "127.0.0.1";
        int port = env("MASTER_PORT") is { Length: > 0 } ? Int(env, "MASTER_PORT", 1, 65535) : world > 1 ? throw new ArgumentException("MASTER_PORT is not set (WORLD_SIZE > 1)") : 29500;
        double seconds = env("PEFT_DIST_TIMEOUT") is { Length: > 0 } s
            ? double.TryParse(s, System.Globalization.CultureInfo.InvariantCulture, out var v) && v > 0 ? v : throw new ArgumentException($"PEFT_DIST_TIMEOUT = '{s}' is not a positive number of seconds")
            : 300;
        return new DistributedEnvironment(rank, world, local, addr, port, TimeSpan.FromSeconds(seconds));
    }

    private static int Int(Func<string, string?> env, string name, int min, int max)
    {
        var s = env(name) ?? throw new ArgumentException($"{name} is not set");
        if (!int.TryParse(s, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int v) || v < min || v > max)
            throw new ArgumentException($"{name} = '{s}' is not an integer in [{min}, {max}]");
        return v;
    }
}
