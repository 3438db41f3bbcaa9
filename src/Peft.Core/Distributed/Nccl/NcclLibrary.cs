namespace Peft.Core.Distributed.Nccl;

/// <summary>
/// Finds <c>libnccl.so.2</c>: <c>PEFT_NCCL_LIB</c> (a file) first; else next to a CUDA libtorch named by
/// <c>LD_LIBRARY_PATH</c> / <c>LIBTORCH_DIR</c> / <c>LIBTORCHSHARP</c> (PyTorch's pip wheel ships it as
/// <c>site-packages/nvidia/nccl/lib/libnccl.so.2</c>, two folders above <c>torch/lib</c>); else the bare name for the
/// system loader (already loaded by libtorch_cuda, or in the loader's path).
/// </summary>
public static class NcclLibrary
{
    /// <summary>The environment variable naming the library file.</summary>
    public const string EnvVar = "PEFT_NCCL_LIB";

    /// <summary>The library's file name.</summary>
    public const string FileName = "libnccl.so.2";

    /// <summary>Candidate paths in search order (the last is the bare name).</summary>
    /// <param name="env">Environment lookup (default: the process environment).</param>
    /// <exception cref="FileNotFoundException"><c>PEFT_NCCL_LIB</c> is set but names no file.</exception>
    public static IReadOnlyList<string> Candidates(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        if (env(EnvVar) is { Length: > 0 } explicitPath)
            return File.Exists(explicitPath) ? [explicitPath] : throw new FileNotFoundException($"{EnvVar} = '{explicitPath}' names no file", explicitPath);
        var dirs = new List<string>();
        if (env("LIBTORCH_DIR") is { Length: > 0 } lt) dirs.Add(Path.Combine(lt, "lib"));
        if (env("LIBTORCHSHARP") is { Length: > 0 } lts && Path.GetDirectoryName(lts) is { } d) dirs.Add(d);
        dirs.AddRange((env("LD_LIBRARY_PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries));
        var found = new List<string>();
        foreach (var dir in dirs)
        {
            foreach (var c in new[] { Path.Combine(dir, FileName), Path.Combine(dir, "..", "..", "nvidia", "nccl", "lib", FileName) })
            {
                var full = Path.GetFullPath(c);
                if (File.Exists(full) && !found.Contains(full)) found.Add(full);
            }
        }
        found.Add(FileName);
        return found;
    }
}
