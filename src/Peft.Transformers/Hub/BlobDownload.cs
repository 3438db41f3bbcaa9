using System.Security.Cryptography;

namespace Peft.Transformers.Hub;

/// <summary>
/// Fetches one blob into <c>blobs/{etag}.incomplete</c>, resuming what is already there with a Range request and
/// retrying dropped connections (<see cref="HubDownloadOptions.MaxAttempts"/>), then checks the size and, for an LFS
/// file (64-hex ETag), the sha256, and only then renames it to <c>blobs/{etag}</c>. A mismatch deletes the partial file.
/// The caller holds the blob's <see cref="BlobLock"/>.
/// </summary>
internal static class BlobDownload
{
    private const int BufferSize = 1 << 16;

    public static async Task FetchAsync(HubHttp http, HubFileMetadata meta, string blob, string repoId, string revision, string file,
        HubDownloadOptions options, CancellationToken ct)
    {
        var incomplete = blob + ".incomplete";
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await FetchOnceAsync(http, meta, incomplete, repoId, revision, file, options.Progress, ct).ConfigureAwait(false);
                break;
            }
            catch (Exception e) when (attempt < options.MaxAttempts && IsTransient(e, ct))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100 * attempt), ct).ConfigureAwait(false);
            }
        }
        Verify(meta, incomplete, repoId, revision, file);
        File.Move(incomplete, blob, overwrite: true);
    }

    private static bool IsTransient(Exception e, CancellationToken ct) =>
        !ct.IsCancellationRequested && e is HttpRequestException or IOException or TaskCanceledException && e is not HubException;

    private static async Task FetchOnceAsync(HubHttp http, HubFileMetadata meta, string incomplete, string repoId, string revision, string file,
        IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        long have = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
        if (meta.Size is { } size && have > size) have = 0;   // longer than the blob: start over
        if (meta.Size is { } full && have == full && full > 0) return;
        using var resp = await http.GetAsync(meta.Location, have, repoId, revision, file, ct).ConfigureAwait(false);
        bool partial = resp.StatusCode == System.Net.HttpStatusCode.PartialContent;
        if (have > 0 && !partial) have = 0;   // the server ignored Range: rewrite from the start
        await using var output = new FileStream(incomplete, have > 0 ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, BufferSize);
        await using var input = await resp.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var buffer = new byte[BufferSize];
        progress?.Report(new DownloadProgress(repoId, file, have, meta.Size));
        int n;
        while ((n = await input.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            await output.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            have += n;
            progress?.Report(new DownloadProgress(repoId, file, have, meta.Size));
        }
        if (meta.Size is { } expected && have < expected)
            throw new IOException($"connection closed after {have} of {expected} bytes of '{file}'");
    }

    private static void Verify(HubFileMetadata meta, string incomplete, string repoId, string revision, string file)
    {
        long length = new FileInfo(incomplete).Length;
        string? problem = null;
        if (meta.Size is { } size && length != size) problem = $"{length} bytes instead of the announced {size}";
        else if (HubPaths.IsSha256(meta.ETag))
        {
            using var stream = File.OpenRead(incomplete);
            var sha = Convert.ToHexStringLower(SHA256.HashData(stream));
            if (!sha.Equals(meta.ETag, StringComparison.OrdinalIgnoreCase)) problem = $"sha256 {sha} instead of the ETag {meta.ETag}";
        }
        if (problem is null) return;
        File.Delete(incomplete);
        throw new HubIntegrityException($"download of '{file}' from '{repoId}' at '{revision}' is corrupt: {problem}; it was deleted and not cached.", repoId, revision, file);
    }
}
