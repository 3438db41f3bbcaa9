using Peft.Transformers.Hub;

namespace Peft.Transformers;

/// <summary>
/// Resolves a hub id ("facebook/opt-125m") to a snapshot folder of the Hugging Face cache that the Python stack shares:
/// <c>$HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>; inside,
/// <c>models--org--name/refs/&lt;revision&gt;</c> holds the commit and <c>snapshots/&lt;commit&gt;/</c> the files.
/// Files not in the cache are downloaded through <see cref="HubDownloader"/> unless offline.
/// </summary>
public static class HubCache
{
    static HubCache() => Peft.Core.AdapterSources.Hub ??= new HubAdapterSource();

    /// <summary>HF's home folder (<c>HF_HOME</c>, else <c>$XDG_CACHE_HOME/huggingface</c>, else <c>~/.cache/huggingface</c>).</summary>
    public static string HfHome
    {
        get
        {
            var home = Environment.GetEnvironmentVariable("HF_HOME");
            if (!string.IsNullOrEmpty(home)) return home;
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            return Path.Combine(string.IsNullOrEmpty(xdg)
                ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache") : xdg, "huggingface");
        }
    }

    /// <summary>The hub cache folder in effect (HF <c>HF_HUB_CACHE</c>).</summary>
    public static string CacheDir
    {
        get
        {
            var hub = Environment.GetEnvironmentVariable("HF_HUB_CACHE");
            return !string.IsNullOrEmpty(hub) ? hub : Path.Combine(HfHome, "hub");
        }
    }

    /// <summary>
    /// A local folder is returned as is; otherwise <paramref name="pathOrId"/> is a hub id: its model files
    /// (<see cref="HubDownloader.DownloadModel"/>) are downloaded into <see cref="FromPretrainedOptions.CacheDir"/>
    /// (default <see cref="CacheDir"/>) at <see cref="FromPretrainedOptions.Revision"/> (default "main") unless already
    /// there, and the snapshot folder is returned. Offline (<c>HF_HUB_OFFLINE</c> / <c>LocalFilesOnly</c>) or
    /// unreachable, the cached snapshot is used.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">Neither a folder nor a hub id; or not cached and not downloadable
    /// (<see cref="LocalEntryNotFoundException"/>).</exception>
    /// <exception cref="HubException">The hub refused (401/403 gated, 404 repo/revision/file) or a download was corrupt.</exception>
    public static string ResolveModelDir(string pathOrId, FromPretrainedOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(pathOrId);
        if (Directory.Exists(pathOrId)) return pathOrId;
        if (!HubPaths.IsRepoId(pathOrId))
            throw new DirectoryNotFoundException($"'{pathOrId}' is neither a local folder nor a hub id (org/name).");
        return HubDownloader.DownloadModel(pathOrId, HubDownloadOptions.From(options));
    }
}
