using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Peft.Transformers.Tests.Hub;

/// <summary>
/// A Hugging Face Hub stand-in on 127.0.0.1 (two HttpListeners: the hub, and a "CDN" on another port, i.e. another
/// origin). It serves <c>/{repo}/resolve/{revision}/{file}</c> as the Hub does: X-Repo-Commit, ETag (git blob sha1) for
/// regular files; for *.safetensors an absolute 302 to the CDN with X-Linked-Etag (sha256) and X-Linked-Size; X-Error-Code
/// on 401/403/404; relative 307 for renamed repos; Range on the CDN. Every request is logged.
/// </summary>
internal sealed class FakeHub : IDisposable
{
    public sealed class Repo
    {
        public required string Commit { get; init; }
        public Dictionary<string, byte[]> Files { get; } = new(StringComparer.Ordinal);
        public HashSet<string> Branches { get; } = ["main"];
        public string? GatedToken { get; init; }
        public string? RenamedTo { get; init; }
        /// <summary>Announce this sha256 instead of the real one (a corrupt CDN).</summary>
        public bool WrongSha { get; init; }
    }

    private readonly HttpListener _hub, _cdn;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, byte[]> _blobs = new();
    private readonly List<Task> _loops = [];

    public Dictionary<string, Repo> Repos { get; } = new(StringComparer.Ordinal);
    public ConcurrentQueue<string> Log { get; } = new();
    public string Endpoint { get; }
    /// <summary>sha256s whose next CDN GET sends half the body, then drops the connection.</summary>
    public ConcurrentDictionary<string, bool> DropOnce { get; } = new();
    /// <summary>When set, a CDN GET waits (at most 20 s) until this many HEADs of the same file were seen.</summary>
    public int HoldGetUntilHeads { get; set; }
    private readonly ConcurrentDictionary<string, int> _heads = new();

    public FakeHub()
    {
        (_hub, int hubPort) = Listen();
        (_cdn, int cdnPort) = Listen();
        Endpoint = $"http://127.0.0.1:{hubPort}";
        CdnBase = $"http://127.0.0.1:{cdnPort}";
        _loops.Add(Serve(_hub, HandleHub));
        _loops.Add(Serve(_cdn, HandleCdn));
    }

    private string CdnBase { get; }

    public static string Sha256(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    public static string GitSha1(byte[] data) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {data.Length}\0"), .. data]));

    /// <summary>A repo holding every file of a fixture folder.</summary>
    public Repo AddFolder(string repoId, string folder, string commit)
    {
        var repo = new Repo { Commit = commit };
        foreach (var f in Directory.GetFiles(folder)) repo.Files[Path.GetFileName(f)] = File.ReadAllBytes(f);
        Repos[repoId] = repo;
        return repo;
    }

    public int Count(string prefix) => Log.Count(l => l.StartsWith(prefix, StringComparison.Ordinal));

    private static (HttpListener, int) Listen()
    {
        for (int attempt = 0; ; attempt++)
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            int port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            var l = new HttpListener();
            l.Prefixes.Add($"http://127.0.0.1:{port}/");
            try { l.Start(); return (l, port); }
            catch (HttpListenerException) when (attempt < 5) { l.Close(); }
        }
    }

    private Task Serve(HttpListener listener, Func<HttpListenerContext, Task> handle) => Task.Run(async () =>
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext ctx;
            try { ctx = await listener.GetContextAsync(); }
            catch (Exception) { return; }
            _ = Task.Run(async () =>
            {
                try { await handle(ctx); }
                catch (Exception) { try { ctx.Response.Abort(); } catch (Exception) { } }
            });
        }
    });

    private async Task HandleHub(HttpListenerContext ctx)
    {
        var req = ctx.Request;
        var res = ctx.Response;
        var path = Uri.UnescapeDataString(req.Url!.AbsolutePath);
        Log.Enqueue($"{req.HttpMethod} {path} auth={req.Headers["Authorization"] ?? "-"}");
        int r = path.IndexOf("/resolve/", StringComparison.Ordinal);
        if (r < 0) { res.StatusCode = 404; res.Close(); return; }
        var repoId = path[1..r];
        var rest = path[(r + "/resolve/".Length)..];
        int slash = rest.IndexOf('/');
        var revision = rest[..slash];
        var file = rest[(slash + 1)..];
        if (!Repos.TryGetValue(repoId, out var repo)) { Error(res, 401, "RepoNotFound", "Repository not found"); return; }
        if (repo.RenamedTo is { } target)
        {
            res.StatusCode = 307;
            res.Headers["Location"] = $"/{target}/resolve/{revision}/{file}";
            res.Close();
            return;
        }
        if (repo.GatedToken is { } token && req.Headers["Authorization"] != "Bearer " + token)
        {
            Error(res, req.Headers["Authorization"] is null ? 401 : 403, "GatedRepo", "Access to this repo is restricted");
            return;
        }
        if (!repo.Branches.Contains(revision) && revision != repo.Commit) { Error(res, 404, "RevisionNotFound", "Invalid rev id"); return; }
        if (!repo.Files.TryGetValue(file, out var data)) { Error(res, 404, "EntryNotFound", "Entry not found"); return; }
        _heads.AddOrUpdate(file, 1, (_, n) => n + 1);
        res.Headers["X-Repo-Commit"] = repo.Commit;
        if (file.EndsWith(".safetensors", StringComparison.Ordinal))
        {
            var sha = Sha256(data);
            var served = repo.WrongSha ? [.. data.Take(data.Length - 1), (byte)(data[^1] ^ 0xFF)] : data;
            _blobs[sha + "/" + file] = served;
            res.StatusCode = 302;
            res.Headers["ETag"] = $"\"{GitSha1(Encoding.ASCII.GetBytes(sha))}\"";
            res.Headers["X-Linked-Etag"] = $"\"{sha}\"";
            res.Headers["X-Linked-Size"] = data.Length.ToString();
            res.Headers["Location"] = $"{CdnBase}/cdn/{sha}/{Uri.EscapeDataString(file)}";
            res.Close();
            return;
        }
        res.Headers["ETag"] = $"\"{GitSha1(data)}\"";
        res.ContentLength64 = data.Length;
        if (req.HttpMethod == "GET") await res.OutputStream.WriteAsync(data);
        res.Close();
    }

    private async Task HandleCdn(HttpListenerContext ctx)
    {
        var req = ctx.Request;
        var res = ctx.Response;
        var path = Uri.UnescapeDataString(req.Url!.AbsolutePath);
        Log.Enqueue($"CDN {req.HttpMethod} {path} range={req.Headers["Range"] ?? "-"} auth={req.Headers["Authorization"] ?? "-"}");
        var parts = path.Split('/', 4);   // "", "cdn", sha, file
        if (parts.Length < 4 || !_blobs.TryGetValue(parts[2] + "/" + parts[3], out var data)) { res.StatusCode = 404; res.Close(); return; }
        if (HoldGetUntilHeads > 0)
        {
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (_heads.GetValueOrDefault(parts[3]) < HoldGetUntilHeads && DateTime.UtcNow < deadline) await Task.Delay(20);
        }
        long from = 0;
        if (req.Headers["Range"] is { } range && range.StartsWith("bytes=", StringComparison.Ordinal))
        {
            from = long.Parse(range["bytes=".Length..].TrimEnd('-'));
            res.StatusCode = 206;
            res.Headers["Content-Range"] = $"bytes {from}-{data.Length - 1}/{data.Length}";
        }
        res.ContentLength64 = data.Length - from;
        if (DropOnce.TryRemove(parts[2], out _))
        {
            await res.OutputStream.WriteAsync(data.AsMemory((int)from, (data.Length - (int)from) / 2));
            await res.OutputStream.FlushAsync();
            res.Abort();
            return;
        }
        await res.OutputStream.WriteAsync(data.AsMemory((int)from));
        res.Close();
    }

    private static void Error(HttpListenerResponse res, int code, string errorCode, string message)
    {
        res.StatusCode = code;
        res.Headers["X-Error-Code"] = errorCode;
        res.Headers["X-Error-Message"] = message;
        res.Close();
    }

    public void Dispose()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _hub.Close();
        _cdn.Close();
        try { Task.WaitAll([.. _loops], TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
    }
}
