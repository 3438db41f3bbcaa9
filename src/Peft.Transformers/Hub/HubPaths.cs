using System.Text.RegularExpressions;

namespace Peft.Transformers.Hub;

/// <summary>
/// Names in the hub cache, checked so that nothing the caller, the server or an index file says can leave the cache
/// folder: repo ids, file paths inside a repo, ETags (blob names), commits and revisions.
/// </summary>
internal static partial class HubPaths
{
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")]
    private static partial Regex NamePart();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")]
    private static partial Regex BlobName();

    /// <summary>"org/name" or "name" → true when every part is a valid hub name.</summary>
    public static bool IsRepoId(string id)
    {
        var parts = id.Split('/');
        return parts.Length is 1 or 2 && parts.All(p => NamePart().IsMatch(p) && !p.Contains("..") && !p.EndsWith('.'));
    }

    /// <summary>The repo's folder in the cache: <c>models--org--name</c> (HF <c>repo_folder_name</c>).</summary>
    public static string RepoFolder(string repoId) => "models--" + repoId.Replace("/", "--");

    /// <summary>A relative file path inside a repo: forward slashes, no empty, "." or ".." segment, not rooted.</summary>
    public static string CheckRepoFile(string repoId, string file)
    {
        if (string.IsNullOrEmpty(file) || file.StartsWith('/') || file.Contains('\\') || file.Contains('\0') || Path.IsPathRooted(file)
            || file.Split('/').Any(s => s.Length == 0 || s == "." || s == ".."))
            throw new ArgumentException($"'{file}' is not a relative file path inside repo '{repoId}' (it would leave the snapshot folder).", nameof(file));
        return file;
    }

    /// <summary>An ETag or commit used as a file name: letters, digits, '-' and '_' only.</summary>
    public static string CheckBlobName(string repoId, string what, string value) =>
        BlobName().IsMatch(value) ? value
            : throw new HubException($"the server sent {what} '{value}' for repo '{repoId}', which is not a valid cache name.", repoId);

    /// <summary>A revision as a path under refs/ (branches may contain '/', e.g. refs/pr/1).</summary>
    public static string CheckRevision(string repoId, string revision)
    {
        if (string.IsNullOrEmpty(revision) || revision.Contains('\\') || revision.StartsWith('/')
            || revision.Split('/').Any(s => s.Length == 0 || s == "." || s == ".."))
            throw new ArgumentException($"revision '{revision}' of repo '{repoId}' is not a valid branch, tag or commit name.", nameof(revision));
        return revision;
    }

    /// <summary><paramref name="root"/>/<paramref name="relative"/>, refused when the result is not inside root.</summary>
    public static string Inside(string root, string relative)
    {
        var full = Path.GetFullPath(Path.Combine(root, relative));
        var r = Path.GetFullPath(root).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        if (!full.StartsWith(r, StringComparison.Ordinal))
            throw new ArgumentException($"'{relative}' leaves the cache folder '{root}'.", nameof(relative));
        return full;
    }

    /// <summary>True for a full 40-hex commit hash (HF <c>REGEX_COMMIT_HASH</c>).</summary>
    public static bool IsCommitHash(string revision) => revision.Length == 40 && revision.All(char.IsAsciiHexDigitLower);

    /// <summary>True for a 64-hex sha256 (an LFS file's ETag).</summary>
    public static bool IsSha256(string etag) => etag.Length == 64 && etag.All(char.IsAsciiHexDigit);
}
