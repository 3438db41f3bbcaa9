using Peft.Core;

namespace Peft.Transformers.Hub;

/// <summary>
/// Lets <c>PeftModel.FromPretrained(model, "user/adapter")</c> (in Peft.Core, which cannot see this assembly) download
/// adapters: registered in <see cref="AdapterSources.Hub"/> when <see cref="HubCache"/> is first used (any
/// <c>AutoModel*.FromPretrained</c> call).
/// </summary>
/// <param name="options">Hub settings (endpoint, token, cache folder); null = the environment's. Its revision is
/// replaced by the one each call asks for.</param>
public sealed class HubAdapterSource(HubDownloadOptions? options = null) : IAdapterSource
{
    /// <summary>Ensures this source is registered (for callers that build models without <c>FromPretrained</c>).</summary>
    public static void Register() => AdapterSources.Hub ??= new HubAdapterSource();

    /// <inheritdoc />
    public string? Resolve(string pathOrId, string? revision)
    {
        if (Directory.Exists(pathOrId) || !HubPaths.IsRepoId(pathOrId)) return null;
        return HubDownloader.DownloadModel(pathOrId, (options ?? new HubDownloadOptions()) with { Revision = revision });
    }
}
