namespace Peft.Core.Distributed;

/// <summary>A collective call failed or timed out; the message names the rank, the world size and the call.</summary>
public class CollectiveException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CollectiveException(int rank, int worldSize, string call, string detail, Exception? inner = null)
        : base($"rank {rank}/{worldSize}: {call} failed: {detail}", inner)
        => (Rank, WorldSize, Call) = (rank, worldSize, call);

    /// <summary>The rank that observed the failure.</summary>
    public int Rank { get; }

    /// <summary>The group's size.</summary>
    public int WorldSize { get; }

    /// <summary>The call that failed (e.g. <c>ncclAllReduce</c>).</summary>
    public string Call { get; }
}
