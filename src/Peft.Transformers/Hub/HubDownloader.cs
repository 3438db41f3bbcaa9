using System.Text.Json.Nodes;
using Peft.Core.IO;

namespace Peft.Transformers.Hub;

/// <summary>
/// Downloads files of a Hub repo into the cache that Python shares (HF <c>hf_hub_download</c> /
/// <c>snapshot_download</c>): <c>models--org--name/blobs/{etag}</c>, <c>snapshots/{commit}/{path}</c> as relative
/// symlinks, <c>refs/{revision}</c>. A file already in the snapshot is not downloaded again; offline
/// (<c>HF_HUB_OFFLINE</c> / <see cref="HubDownloadOptions.LocalFilesOnly"/>) or unreachable, the cached copy is used.
/// </summary>
public static class HubDownloader
{
    /// <summary>The files a model or tokenizer folder may hold besides its weights; each is fetched when the repo has it.</summary>
    public static IReadOnlyList<string> ModelSideFiles { get; } =
    [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "added_tokens.json", "chat_template.jinja", "vocab.json", "merges.txt", "vocab.txt",
    ];

    /// <summary>Downloads (or finds in the cache) one file; returns its path in the snapshot folder.</summary>
    /// <exception cref="HubException">The server refused (typed by cause) or the download was corrupt.</exception>
    /// <exception cref="LocalEntryNotFoundException">Offline or unreachable, and the file is not cached.</exception>
    public static string DownloadFile(string repoId, string fileName, HubDownloadOptions? options = null, CancellationToken cancellationToken = default) =>
        Task.Run(() => DownloadFileAsync(repoId, fileName, options, cancellationToken), cancellationToken).GetAwaiter().GetResult();

    /// <inheritdoc cref="DownloadFile"/>
    public static async Task<string> DownloadFileAsync(string repoId, string fileName, HubDownloadOptions? options = null, CancellationToken cancellationToken = default)
    {
        var ctx = Context.Create(repoId, options);
        HubPaths.CheckRepoFile(repoId, fileName);
        using var http = new HubHttp(ctx.Settings);
        try
        {
            return await FileAsync(http, ctx, fileName, ctx.Settings.Revision, cancellationToken).ConfigureAwait(false)
                ?? throw new InvalidOperationException("unreachable");
        }
        catch (HubUnreachableException e)
        {
            return ctx.CachedFile(ctx.Settings.Revision, fileName) ?? throw ctx.NotCached(fileName, e.InnerException);
        }
    }

    /// <summary>
    /// Downloads what a model, tokenizer or adapter folder needs: <see cref="ModelSideFiles"/> the repo has,
    /// <c>adapter_config.json</c> + <c>adapter_model.safetensors</c>, and the weights: the shards that
    /// <c>model.safetensors.index.json</c> names (only those), else <c>model.safetensors</c>. All files come from the
    /// commit the revision resolved to first. Returns the snapshot folder.
    /// </summary>
    public static string DownloadModel(string repoId, HubDownloadOptions? options = null, CancellationToken cancellationToken = default) =>
        Task.Run(() => DownloadModelAsync(repoId, options, cancellationToken), cancellationToken).GetAwaiter().GetResult();

    /// <inheritdoc cref="DownloadModel"/>
    public static async Task<string> DownloadModelAsync(string repoId, HubDownloadOptions? options = null, CancellationToken cancellationToken = default)
    {
        var ctx = Context.Create(repoId, options);
        if (ctx.Settings.Offline) return ctx.CachedSnapshot();
        using var http = new HubHttp(ctx.Settings);
        try
        {
            string revision = ctx.Settings.Revision;
            string? snapshot = null;
            async Task<string?> Optional(string file)
            {
                try
                {
                    var path = await FileAsync(http, ctx, file, revision, cancellationToken).ConfigureAwait(false);
                    snapshot ??= path[..^(file.Length + 1)];
                    revision = Path.GetFileName(snapshot);   // pin every later file to the resolved commit
                    return path;
                }
                catch (HubEntryNotFoundException) { return null; }
            }
            foreach (var file in ModelSideFiles) await Optional(file).ConfigureAwait(false);
            if (await Optional("adapter_config.json").ConfigureAwait(false) is not null)
                await Optional("adapter_model.safetensors").ConfigureAwait(false);
            if (await Optional("model.safetensors.index.json").ConfigureAwait(false) is { } index)
            {
                foreach (var shard in ShardNames(repoId, index))
                    await FileAsync(http, ctx, shard, revision, cancellationToken).ConfigureAwait(false);
            }
            else await Optional("model.safetensors").ConfigureAwait(false);
            return snapshot ?? throw new HubEntryNotFoundException(
                $"repository '{repoId}' at '{ctx.Settings.Revision}' has none of the files of a model folder ({string.Join(", ", ModelSideFiles)}, adapter_config.json, model.safetensors).",
                repoId, ctx.Settings.Revision, "config.json", 404);
        }
        catch (HubUnreachableException e)
        {
            try { return ctx.CachedSnapshot(); }
            catch (LocalEntryNotFoundException nf) { throw new LocalEntryNotFoundException(nf.Message + $" The hub could not be reached: {e.InnerException?.Message}", e.InnerException); }
        }
    }

    /// <summary>The distinct shard files of a <c>model.safetensors.index.json</c> <c>weight_map</c>, each checked to stay in the repo.</summary>
    internal static IReadOnlyList<string> ShardNames(string repoId, string indexPath)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(indexPath)); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{indexPath}: not valid JSON: {e.Message}", e); }
        if (root?["weight_map"] is not JsonObject map)
            throw new InvalidDataException($"{indexPath}: no \"weight_map\" object");
        var shards = new List<string>();
        foreach (var (key, value) in map)
        {
            var name = value?.GetValueKind() == System.Text.Json.JsonValueKind.String ? value.GetValue<string>()
                : throw new InvalidDataException($"{indexPath}: weight_map[\"{key}\"] is not a file name");
            HubPaths.CheckRepoFile(repoId, name);
            if (!shards.Contains(name)) shards.Add(name);
        }
        return shards;
    }

    private static async Task<string> FileAsync(HubHttp http, Context ctx, string file, string revision, CancellationToken ct)
    {
        HubPaths.CheckRepoFile(ctx.RepoId, file);
        if (HubPaths.IsCommitHash(revision) && ctx.CachedFile(revision, file) is { } pinned) return pinned;
        if (ctx.Settings.Offline)
            return ctx.CachedFile(revision, file) ?? throw ctx.NotCached(file, null);
        HubFileMetadata meta;
        try
        {
            meta = await http.HeadAsync(ctx.RepoId, revision, file, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !ct.IsCancellationRequested))
        {
            throw new HubUnreachableException(e);
        }
        if (revision != meta.Commit)
            AtomicFile.WriteAllText(HubPaths.Inside(ctx.Storage, Path.Combine("refs", HubPaths.CheckRevision(ctx.RepoId, revision))), meta.Commit);
        var pointer = HubPaths.Inside(ctx.Storage, Path.Combine("snapshots", meta.Commit, file));
        if (File.Exists(pointer)) return pointer;
        var blob = HubPaths.Inside(ctx.Storage, Path.Combine("blobs", meta.ETag));
        if (!File.Exists(blob))
        {
            var lockPath = HubPaths.Inside(ctx.Settings.CacheDir, Path.Combine(".locks", HubPaths.RepoFolder(ctx.RepoId), meta.ETag + ".lock"));
            using var _ = await BlobLock.AcquireAsync(lockPath, ctx.Settings.Options.LockTimeout, ct).ConfigureAwait(false);
            if (!File.Exists(blob))
            {
                Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
                await BlobDownload.FetchAsync(http, meta, blob, ctx.RepoId, revision, file, ctx.Settings.Options, ct).ConfigureAwait(false);
            }
        }
        SnapshotLinks.Link(blob, pointer);
        return pointer;
    }

    private sealed class HubUnreachableException(Exception inner) : Exception(inner.Message, inner);

    /// <summary>One call's repo, settings and cache folder.</summary>
    private sealed record Context(string RepoId, HubSettings Settings, string Storage)
    {
        public static Context Create(string repoId, HubDownloadOptions? options)
        {
            ArgumentException.ThrowIfNullOrEmpty(repoId);
            if (!HubPaths.IsRepoId(repoId))
                throw new ArgumentException($"'{repoId}' is not a hub repo id ('name' or 'org/name' of letters, digits, '-', '_', '.').", nameof(repoId));
            var settings = HubSettings.Resolve(options);
            HubPaths.CheckRevision(repoId, settings.Revision);
            return new Context(repoId, settings, Path.Combine(settings.CacheDir, HubPaths.RepoFolder(repoId)));
        }

        /// <summary>refs/{revision} → commit, or the revision itself when it names a snapshot.</summary>
        public string? CachedCommit(string revision)
        {
            var refFile = HubPaths.Inside(Storage, Path.Combine("refs", revision));
            if (File.Exists(refFile)) return HubPaths.CheckBlobName(RepoId, "commit", File.ReadAllText(refFile).Trim());
            return Directory.Exists(HubPaths.Inside(Storage, Path.Combine("snapshots", revision))) ? revision : null;
        }

        public string? CachedFile(string revision, string file) =>
            CachedCommit(revision) is { } commit && HubPaths.Inside(Storage, Path.Combine("snapshots", commit, file)) is var p && File.Exists(p) ? p : null;

        public string CachedSnapshot()
        {
            var revision = Settings.Revision;
            if (!Directory.Exists(Storage))
                throw new LocalEntryNotFoundException(
                    $"'{RepoId}' is not in the Hugging Face cache ({Storage} does not exist){OfflineNote}.");
            var commit = CachedCommit(revision);
            var snapshot = commit is null ? null : HubPaths.Inside(Storage, Path.Combine("snapshots", commit));
            if (snapshot is null || !Directory.Exists(snapshot))
                throw new LocalEntryNotFoundException(
                    $"'{RepoId}' revision '{revision}' is not in the Hugging Face cache ({Path.Combine(Storage, "snapshots", commit ?? revision)} does not exist){OfflineNote}.");
            return snapshot;
        }

        public LocalEntryNotFoundException NotCached(string file, Exception? inner) => new(
            $"'{file}' of '{RepoId}' at revision '{Settings.Revision}' is not in the Hugging Face cache ({Storage}){OfflineNote}"
            + (inner is null ? "." : $" and the hub could not be reached: {inner.Message}"), inner);

        private string OfflineNote => Settings.Offline
            ? " and downloading is off (HF_HUB_OFFLINE is set or LocalFilesOnly = true)" : "";
    }
}
