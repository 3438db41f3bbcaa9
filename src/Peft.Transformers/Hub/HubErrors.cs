namespace Peft.Transformers.Hub;

/// <summary>
/// A Hub request failed (HF <c>huggingface_hub.errors.HfHubHTTPError</c>); the subclasses say why. Carries the repo id,
/// revision, file and HTTP status when known.
/// </summary>
public class HubException(string message, string repoId, string? revision = null, string? fileName = null, int? statusCode = null, Exception? inner = null)
    : IOException(message, inner)
{
    /// <summary>The repo id ("org/name").</summary>
    public string RepoId { get; } = repoId;
    /// <summary>The revision asked for (branch, tag or commit), when known.</summary>
    public string? Revision { get; } = revision;
    /// <summary>The file inside the repo, when known.</summary>
    public string? FileName { get; } = fileName;
    /// <summary>The HTTP status code, when the server answered.</summary>
    public int? StatusCode { get; } = statusCode;

    internal const string TokenHelp =
        "Pass a token with FromPretrainedOptions.Token (or HubDownloadOptions.Token), set the HF_TOKEN environment variable, or write it to $HF_HOME/token (what `hf auth login` does).";
}

/// <summary>The repo does not exist, or is private and the token cannot see it (HF <c>RepositoryNotFoundError</c>).</summary>
public sealed class HubRepositoryNotFoundException(string message, string repoId, int? statusCode)
    : HubException(message, repoId, statusCode: statusCode);

/// <summary>The repo exists but not the revision (HF <c>RevisionNotFoundError</c>).</summary>
public sealed class HubRevisionNotFoundException(string message, string repoId, string revision, int? statusCode)
    : HubException(message, repoId, revision, statusCode: statusCode);

/// <summary>The repo and revision exist but not the file (HF <c>EntryNotFoundError</c>).</summary>
public sealed class HubEntryNotFoundException(string message, string repoId, string revision, string fileName, int? statusCode)
    : HubException(message, repoId, revision, fileName, statusCode);

/// <summary>401/403: a gated or private repo without a token that has access (HF <c>GatedRepoError</c>).</summary>
public sealed class HubAccessDeniedException(string message, string repoId, string revision, string fileName, int statusCode)
    : HubException(message, repoId, revision, fileName, statusCode);

/// <summary>
/// A downloaded file does not match what the server announced (size, or the sha256 that is an LFS file's ETag); the
/// file was deleted and nothing was stored under the blob's name.
/// </summary>
public sealed class HubIntegrityException(string message, string repoId, string revision, string fileName)
    : HubException(message, repoId, revision, fileName);

/// <summary>
/// The file is not in the local cache and may not or could not be downloaded: offline mode
/// (<c>HF_HUB_OFFLINE</c> / <c>LocalFilesOnly</c>) or no connection (HF <c>LocalEntryNotFoundError</c>). Derives from
/// <see cref="DirectoryNotFoundException"/> so callers of the earlier cache-only resolver keep working.
/// </summary>
public sealed class LocalEntryNotFoundException(string message, Exception? inner = null) : DirectoryNotFoundException(message, inner);
