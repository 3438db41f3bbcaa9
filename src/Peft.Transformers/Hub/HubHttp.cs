using System.Net;
using System.Net.Http.Headers;

namespace Peft.Transformers.Hub;

/// <summary>
/// The HTTP side of huggingface_hub's <c>file_download.py</c>: the metadata HEAD (relative redirects followed, an
/// absolute one, e.g. to a CDN, reported as the download location), the GET with manual redirects (the Authorization
/// header is dropped when the host changes) and the mapping of error answers to typed exceptions.
/// </summary>
internal sealed class HubHttp : IDisposable
{
    private const int MaxRedirects = 10;
    private readonly HttpClient _client;
    private readonly HubSettings _settings;

    public HubHttp(HubSettings settings)
    {
        _settings = settings;
        _client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        _client.DefaultRequestHeaders.UserAgent.ParseAdd("peft-net-hub/1.0");
    }

    public Uri ResolveUrl(string repoId, string revision, string file) =>
        new($"{_settings.Endpoint}/{repoId}/resolve/{Uri.EscapeDataString(revision)}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");

    /// <summary>HEAD of a file; throws the typed errors of <see cref="ThrowForStatus"/>.</summary>
    public async Task<HubFileMetadata> HeadAsync(string repoId, string revision, string file, CancellationToken ct)
    {
        var url = ResolveUrl(repoId, revision, file);
        for (int hop = 0; ; hop++)
        {
            using var req = NewRequest(HttpMethod.Head, url, sameHost: true);
            req.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(_settings.Options.RequestTimeout);
            using var resp = await _client.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, cts.Token).ConfigureAwait(false);
            int code = (int)resp.StatusCode;
            if (code is >= 300 and < 400 && resp.Headers.Location is { } loc)
            {
                if (hop >= MaxRedirects) throw new HubException($"too many redirects for {url}", repoId, revision, file, code);
                if (!loc.IsAbsoluteUri || loc.OriginalString.StartsWith('/'))
                {
                    url = new Uri(url, loc);   // a relative redirect (renamed repo): follow it
                    continue;
                }
                return Metadata(resp, repoId, revision, file, loc);   // absolute (CDN): metadata from this answer
            }
            ThrowForStatus(resp, repoId, revision, file);
            return Metadata(resp, repoId, revision, file, url);
        }
    }

    /// <summary>GETs <paramref name="url"/> from byte <paramref name="from"/> on; the caller disposes the response.</summary>
    public async Task<HttpResponseMessage> GetAsync(Uri url, long from, string repoId, string revision, string file, CancellationToken ct)
    {
        var origin = url;
        var hub = new Uri(_settings.Endpoint);
        for (int hop = 0; ; hop++)
        {
            // the token goes to the hub's origin only, never to a CDN it redirects to
            using var req = NewRequest(HttpMethod.Get, url, sameHost: url.Scheme == hub.Scheme && url.Host == hub.Host && url.Port == hub.Port);
            if (from > 0) req.Headers.Range = new RangeHeaderValue(from, null);
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(_settings.Options.RequestTimeout);
            var resp = await _client.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, cts.Token).ConfigureAwait(false);
            int code = (int)resp.StatusCode;
            if (code is >= 300 and < 400 && resp.Headers.Location is { } loc)
            {
                resp.Dispose();
                if (hop >= MaxRedirects) throw new HubException($"too many redirects for {origin}", repoId, revision, file, code);
                url = new Uri(url, loc);
                continue;
            }
            try { ThrowForStatus(resp, repoId, revision, file); }
            catch { resp.Dispose(); throw; }
            return resp;
        }
    }

    private HttpRequestMessage NewRequest(HttpMethod method, Uri url, bool sameHost)
    {
        var req = new HttpRequestMessage(method, url);
        if (_settings.Token is { } token && sameHost) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return req;
    }

    private static HubFileMetadata Metadata(HttpResponseMessage resp, string repoId, string revision, string file, Uri location)
    {
        var commit = Header(resp, "X-Repo-Commit")
            ?? throw new HubException($"the server did not send X-Repo-Commit for {repoId}/{file} at '{revision}' (is the endpoint a Hugging Face Hub?).", repoId, revision, file);
        var etag = Header(resp, "X-Linked-Etag") ?? resp.Headers.ETag?.Tag ?? Header(resp, "ETag")
            ?? throw new HubException($"the server did not send an ETag for {repoId}/{file} at '{revision}'.", repoId, revision, file);
        etag = etag.StartsWith("W/", StringComparison.Ordinal) ? etag[2..] : etag;
        etag = etag.Trim('"');
        long? size = long.TryParse(Header(resp, "X-Linked-Size"), out var s) ? s : resp.Content.Headers.ContentLength;
        return new HubFileMetadata(HubPaths.CheckBlobName(repoId, "commit", commit), HubPaths.CheckBlobName(repoId, "ETag", etag), size, location);
    }

    private static string? Header(HttpResponseMessage resp, string name) =>
        resp.Headers.TryGetValues(name, out var v) || resp.Content.Headers.TryGetValues(name, out v) ? v.FirstOrDefault() : null;

    /// <summary>Maps an error answer to a typed exception (HF <c>hf_raise_for_status</c>, X-Error-Code first).</summary>
    public static void ThrowForStatus(HttpResponseMessage resp, string repoId, string revision, string file)
    {
        int code = (int)resp.StatusCode;
        if (code < 400) return;
        var errorCode = Header(resp, "X-Error-Code");
        var serverMsg = Header(resp, "X-Error-Message");
        var tail = serverMsg is null ? "" : $" Server: {serverMsg}";
        if (errorCode == "RepoNotFound" || (code == 401 && errorCode is null && serverMsg is null))
            throw new HubRepositoryNotFoundException(
                $"repository '{repoId}' was not found ({code}). If it is private or gated, make sure you are authenticated: {HubException.TokenHelp}{tail}", repoId, code);
        if (errorCode == "GatedRepo" || code is 401 or 403)
            throw new HubAccessDeniedException(
                $"access to '{repoId}' is restricted ({code}): it is gated or private and this request has no token with access (file '{file}'). Ask for access on the repo's page, then: {HubException.TokenHelp}{tail}",
                repoId, revision, file, code);
        if (errorCode == "RevisionNotFound")
            throw new HubRevisionNotFoundException($"revision '{revision}' was not found in repository '{repoId}' ({code}).{tail}", repoId, revision, code);
        if (errorCode == "EntryNotFound" || code == 404)
            throw new HubEntryNotFoundException($"file '{file}' was not found in repository '{repoId}' at revision '{revision}' ({code}).{tail}", repoId, revision, file, code);
        throw new HubException($"the hub answered {code} {resp.ReasonPhrase} for '{file}' of '{repoId}' at '{revision}'.{tail}", repoId, revision, file, code);
    }

    public void Dispose() => _client.Dispose();
}
