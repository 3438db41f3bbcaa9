namespace Peft.Transformers.Hub;

/// <summary>
/// Settings of a Hub download (HF <c>hf_hub_download</c> keyword arguments). Null values fall back to the environment
/// as huggingface_hub does: <c>HF_ENDPOINT</c>, <c>HF_TOKEN</c> / the token file, <c>HF_HUB_CACHE</c> / <c>HF_HOME</c>,
/// <c>HF_HUB_OFFLINE</c>.
/// </summary>
public sealed record HubDownloadOptions
{
    /// <summary>Branch, tag or 40-hex commit (HF <c>revision</c>); null = "main".</summary>
    public string? Revision { get; init; }
    /// <summary>Access token sent as <c>Authorization: Bearer</c> (HF <c>token</c>); null = HF_TOKEN or the token file.</summary>
    public string? Token { get; init; }
    /// <summary>Hub cache folder (HF <c>cache_dir</c>); null = <see cref="HubCache.CacheDir"/>.</summary>
    public string? CacheDir { get; init; }
    /// <summary>Never touch the network (HF <c>local_files_only</c>); HF_HUB_OFFLINE=1 has the same effect.</summary>
    public bool LocalFilesOnly { get; init; }
    /// <summary>Hub base URL (HF <c>endpoint</c>); null = HF_ENDPOINT or https://huggingface.co.</summary>
    public string? Endpoint { get; init; }
    /// <summary>Receives byte counts while a file downloads.</summary>
    public IProgress<DownloadProgress>? Progress { get; init; }
    /// <summary>Timeout of each HTTP request before the body (HF <c>etag_timeout</c> is 10 s); default 10 s.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>How long to wait for another process that holds a blob's lock; default 10 minutes.</summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>Attempts to finish one file after dropped connections, each resuming with a Range request; default 5.</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>The hub settings of <see cref="FromPretrainedOptions"/> (null = all defaults).</summary>
    public static HubDownloadOptions From(FromPretrainedOptions? options) => options is null ? new() : new()
    {
        Revision = options.Revision, Token = options.Token, CacheDir = options.CacheDir,
        LocalFilesOnly = options.LocalFilesOnly, Endpoint = options.Endpoint,
    };
}
