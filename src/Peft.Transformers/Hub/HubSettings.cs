namespace Peft.Transformers.Hub;

/// <summary>
/// <see cref="HubDownloadOptions"/> resolved against the environment once per call (huggingface_hub's
/// <c>constants.py</c>): endpoint, token, cache folder, offline flag, revision.
/// </summary>
internal sealed record HubSettings(string Endpoint, string? Token, string CacheDir, bool Offline, string Revision, HubDownloadOptions Options)
{
    public const string DefaultEndpoint = "https://huggingface.co";

    public static HubSettings Resolve(HubDownloadOptions? options)
    {
        options ??= new HubDownloadOptions();
        var endpoint = options.Endpoint ?? Env("HF_ENDPOINT") ?? DefaultEndpoint;
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            throw new ArgumentException($"Hub endpoint '{endpoint}' is not an absolute http(s) URL (HubDownloadOptions.Endpoint / HF_ENDPOINT).", nameof(options));
        return new HubSettings(endpoint.TrimEnd('/'), options.Token ?? ReadToken(), options.CacheDir ?? HubCache.CacheDir,
            options.LocalFilesOnly || IsTrue(Env("HF_HUB_OFFLINE")), options.Revision ?? "main", options);
    }

    /// <summary>HF_TOKEN, then the legacy HUGGING_FACE_HUB_TOKEN, then the token file (HF_TOKEN_PATH or $HF_HOME/token).</summary>
    public static string? ReadToken()
    {
        var token = Env("HF_TOKEN") ?? Env("HUGGING_FACE_HUB_TOKEN");
        if (token is not null) return token.Trim();
        var path = Env("HF_TOKEN_PATH") ?? Path.Combine(HubCache.HfHome, "token");
        if (!File.Exists(path)) return null;
        var text = File.ReadAllText(path).Trim();
        return text.Length == 0 ? null : text;
    }

    private static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;

    private static bool IsTrue(string? v) => v is not null && v.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";
}
