namespace Peft.Transformers;

/// <summary>
/// Resolves a hub id ("facebook/opt-125m") to a snapshot folder of the local Hugging Face cache, where the Python
/// stack stores downloads: <c>$HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>;
/// inside, <c>models--org--name/refs/&lt;revision&gt;</c> holds the commit and <c>snapshots/&lt;commit&gt;/</c> the files.
/// </summary>
public static class HubCache
{
    /// <summary>The hub cache folder in effect (HF <c>HF_HUB_CACHE</c>).</summary>
    public static string CacheDir
    {
        get
        {
            var hub = Environment.GetEnvironmentVariable("HF_HUB_CACHE");
            if (!string.IsNullOrEmpty(hub)) return hub;
            var home = Environment.GetEnvironmentVariable("HF_HOME");
            if (string.IsNullOrEmpty(home))
            {
                var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
                home = Path.Combine(string.IsNullOrEmpty(xdg)
                    ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache") : xdg, "huggingface");
            }
            return Path.Combine(home, "hub");
        }
    }

    /// <summary>
    /// A local folder is returned as is; otherwise <paramref name="pathOrId"/> is a hub id resolved in
    /// <see cref="CacheDir"/> at <see cref="FromPretrainedOptions.Revision"/> (default "main").
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">Neither a folder nor a cached model.</exception>
    public static string ResolveModelDir(string pathOrId, FromPretrainedOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(pathOrId);
        if (Directory.Exists(pathOrId)) return pathOrId;
        var revision = options?.Revision ?? "main";
        var parts = pathOrId.Split('/');
        if (parts.Length > 2 || parts.Any(p => p.Length == 0 || p == "." || p == ".."))
            throw new DirectoryNotFoundException($"'{pathOrId}' is neither a local folder nor a hub id (org/name).");
        var repoDir = Path.Combine(CacheDir, "models--" + string.Join("--", parts));
        if (!Directory.Exists(repoDir))
            throw new DirectoryNotFoundException(
                $"'{pathOrId}' is not a local folder and is not in the Hugging Face cache ({repoDir} does not exist). Downloading is not available: download it with the Python stack or pass a folder.");
        string commit = revision;
        var refFile = Path.Combine(repoDir, "refs", revision);
        if (File.Exists(refFile)) commit = File.ReadAllText(refFile).Trim();
        var snapshot = Path.Combine(repoDir, "snapshots", commit);
        if (!Directory.Exists(snapshot))
            throw new DirectoryNotFoundException($"'{pathOrId}' revision '{revision}' is not in the Hugging Face cache ({snapshot} does not exist).");
        return snapshot;
    }
}
