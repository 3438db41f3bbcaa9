namespace Peft.Core.Torch.Cuda;

/// <summary>
/// Where to look for NVRTC (<c>libnvrtc.so.*</c>), in order: the <see cref="EnvVar"/> override; the folder of the
/// loaded <c>libtorch_cuda.so</c> (TorchSharp's libtorch-cuda packages ship NVRTC there, possibly under libtorch's
/// hashed name <c>libnvrtc-&lt;hex&gt;.so.12</c>); the Python wheel layout
/// beside it (<c>site-packages/nvidia/*/lib</c>, e.g. <c>nvidia/cu13/lib</c> or <c>nvidia/cuda_nvrtc/lib</c>, when
/// libtorch is <c>site-packages/torch/lib</c>); each <c>LD_LIBRARY_PATH</c> folder; then the loader's own search by
/// the plain names (newest major first). Pure: the file system is reached only through the delegate passed in.
/// </summary>
internal static partial class NvrtcLocator
{
    /// <summary>Environment variable naming the NVRTC library to load (a path or a loader name); tried first.</summary>
    public const string EnvVar = "PEFT_NVRTC";

    /// <summary>Plain names the dynamic loader is asked for last.</summary>
    public static readonly string[] PlainNames = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"];

    /// <summary>
    /// The candidates to try, in order, without duplicates. <paramref name="libtorchCuda"/>: path of the loaded
    /// libtorch_cuda.so (null when none); <paramref name="listNvrtc"/>: the NVRTC libraries in a folder (full paths,
    /// any order; empty when the folder is missing); <paramref name="subfolders"/>: the subfolders of a folder.
    /// </summary>
    public static IReadOnlyList<string> Candidates(string? envOverride, string? libtorchCuda, string? ldLibraryPath,
        Func<string, IEnumerable<string>> listNvrtc, Func<string, IEnumerable<string>> subfolders)
    {
        var result = new List<string>();
        void Add(string p)
        {
            if (!result.Contains(p, StringComparer.Ordinal)) result.Add(p);
        }
        void AddFolder(string dir)
        {
            foreach (var f in Newest(listNvrtc(dir))) Add(f);
        }
        if (!string.IsNullOrWhiteSpace(envOverride)) Add(envOverride.Trim());
        if (Path.GetDirectoryName(libtorchCuda) is { Length: > 0 } torchLib)
        {
            AddFolder(torchLib);
            // site-packages/torch/lib → site-packages/nvidia/<pkg>/lib
            if (Path.GetDirectoryName(Path.GetDirectoryName(torchLib)) is { Length: > 0 } sitePackages)
            {
                var nvidia = Path.Combine(sitePackages, "nvidia");
                foreach (var pkg in subfolders(nvidia).Order(StringComparer.Ordinal)) AddFolder(Path.Combine(pkg, "lib"));
            }
        }
        foreach (var dir in (ldLibraryPath ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)) AddFolder(dir);
        foreach (var name in PlainNames) Add(name);
        return result;
    }

    /// <summary>
    /// True for an NVRTC library file name: <c>libnvrtc.so</c>, <c>libnvrtc.so.13</c>, ..., or libtorch's hashed copy
    /// <c>libnvrtc-&lt;hex&gt;.so.12</c>; not <c>libnvrtc-builtins*</c> or <c>libnvrtc.alt*</c>.
    /// </summary>
    public static bool IsNvrtc(string fileName) => NvrtcName().IsMatch(fileName);

    [System.Text.RegularExpressions.GeneratedRegex(@"^libnvrtc(-[0-9a-f]+)?\.so(\.[0-9]+)*$")]
    private static partial System.Text.RegularExpressions.Regex NvrtcName();

    // Newest version first (longest version string and highest numbers), so libnvrtc.so.13 beats libnvrtc.so.12.
    private static IEnumerable<string> Newest(IEnumerable<string> files) =>
        files.Where(f => IsNvrtc(Path.GetFileName(f)))
            .OrderByDescending(f => Version(Path.GetFileName(f)), Comparer<int[]>.Create(CompareVersions))
            .ThenBy(f => f, StringComparer.Ordinal);

    private static int[] Version(string name)
    {
        int so = name.IndexOf(".so", StringComparison.Ordinal);
        return so < 0 || name.Length <= so + 4 ? [] : name[(so + 4)..].Split('.').Select(p => int.TryParse(p, out var v) ? v : 0).ToArray();
    }

    private static int CompareVersions(int[] a, int[] b)
    {
        for (int i = 0; i < Math.Min(a.Length, b.Length); i++)
            if (a[i] != b[i]) return a[i].CompareTo(b[i]);
        return a.Length.CompareTo(b.Length);
    }

    /// <summary>The real file system's view for <see cref="Candidates"/>.</summary>
    public static IEnumerable<string> ListNvrtcFiles(string dir) =>
        Directory.Exists(dir) ? Directory.EnumerateFiles(dir, "libnvrtc*").Where(f => IsNvrtc(Path.GetFileName(f))) : [];

    /// <summary>The real file system's subfolders (empty when <paramref name="dir"/> is missing).</summary>
    public static IEnumerable<string> Subfolders(string dir) => Directory.Exists(dir) ? Directory.EnumerateDirectories(dir) : [];

    /// <summary>Path of the loaded library whose file name is <paramref name="fileName"/> (from /proc/self/maps), or null.</summary>
    public static string? LoadedLibrary(string fileName)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/');
                if (slash < 0) continue;
                var path = line[slash..].Trim();
                if (Path.GetFileName(path) == fileName) return path;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }
}
