namespace Peft.Core;

/// <summary>
/// Turns an adapter location that is not a local folder (a Hub id such as "user/adapter") into a local folder, e.g. by
/// downloading it into the Hugging Face cache. Peft.Core has no HTTP client; Peft.Transformers registers its Hub
/// downloader in <see cref="AdapterSources.Hub"/>.
/// </summary>
public interface IAdapterSource
{
    /// <summary>The local folder for <paramref name="pathOrId"/> at <paramref name="revision"/> (null = "main"), or null
    /// when this source does not handle it.</summary>
    string? Resolve(string pathOrId, string? revision);
}

/// <summary>Where <c>PeftModel.FromPretrained</c> / <c>LoadAdapter</c> look up adapter locations that are not folders.</summary>
public static class AdapterSources
{
    private static IAdapterSource? _hub;

    /// <summary>The Hub source (set by Peft.Transformers' <c>HubCache</c> on first use); null = folders only.</summary>
    public static IAdapterSource? Hub
    {
        get => Volatile.Read(ref _hub);
        set => Volatile.Write(ref _hub, value);
    }

    /// <summary><paramref name="pathOrId"/> itself when it is a folder (or no source handles it), else the source's folder.</summary>
    public static string Resolve(string pathOrId, string? revision = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(pathOrId);
        if (Directory.Exists(pathOrId)) return pathOrId;
        return Hub?.Resolve(pathOrId, revision) ?? pathOrId;
    }
}
