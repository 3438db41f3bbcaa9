namespace Peft.Core.Distributed.Nccl;

/// <summary>Turns <c>ncclResult_t</c> codes into <see cref="NcclException"/>s that name the rank and the call.</summary>
public static class NcclErrors
{
    /// <summary>The nccl.h name of <paramref name="result"/> (e.g. 5 → <c>ncclInvalidUsage</c>).</summary>
    public static string Name(int result) => result switch
    {
        0 => "ncclSuccess",
        1 => "ncclUnhandledCudaError",
        2 => "ncclSystemError",
        3 => "ncclInternalError",
        4 => "ncclInvalidArgument",
        5 => "ncclInvalidUsage",
        6 => "ncclRemoteError",
        7 => "ncclInProgress",
        _ => $"ncclResult {result}",
    };

    /// <summary>Throws <see cref="NcclException"/> unless <paramref name="result"/> is ncclSuccess.</summary>
    /// <param name="api">The library (its error strings are part of the message).</param>
    /// <param name="result">The returned code.</param>
    /// <param name="call">The C function, e.g. <c>ncclAllReduce</c>, with its arguments in short.</param>
    /// <param name="rank">This rank.</param>
    /// <param name="worldSize">The group's size.</param>
    /// <param name="comm">The communicator (for <c>ncclGetLastError</c>), or zero.</param>
    public static void Check(INcclApi api, int result, string call, int rank, int worldSize, IntPtr comm = default)
    {
        if (result == 0) return;
        string text = Safe(() => api.GetErrorString(result));
        string last = Safe(() => api.GetLastError(comm));
        string detail = $"{Name(result)} ({result}): {text}" + (string.IsNullOrWhiteSpace(last) ? "" : $"; last error: {last}");
        throw new NcclException(rank, worldSize, call, result, detail);
    }

    private static string Safe(Func<string> f)
    {
        try { return f(); }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException) { return ""; }
    }
}

/// <summary>An NCCL call returned an error; <see cref="Result"/> is the <c>ncclResult_t</c>.</summary>
public sealed class NcclException(int rank, int worldSize, string call, int result, string detail)
    : CollectiveException(rank, worldSize, call, detail)
{
    /// <summary>The <c>ncclResult_t</c> code.</summary>
    public int Result { get; } = result;
}
