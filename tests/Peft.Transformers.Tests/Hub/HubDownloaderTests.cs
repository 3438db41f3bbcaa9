using System.Diagnostics;
using System.Text;
using Peft.Core;
using Peft.Testing;
using Peft.Transformers.Hub;
using Peft.Transformers.Tests.Models;
using TorchSharp;

namespace Peft.Transformers.Tests.Hub;

/// <summary>
/// Hub downloads against <see cref="FakeHub"/> on 127.0.0.1 (nothing reaches the real network): the Python cache
/// layout, redirects, gated repos, typed 404s, resume after a dropped connection, a corrupt blob, offline mode, sharded
/// checkpoints, two processes downloading one blob, and models / tokenizers / adapters loaded from the downloaded cache.
/// Set PEFT_HUB_EXPORT_CACHE to keep the cache of <see cref="Model_and_tokenizer_load_from_a_hub_download_then_offline"/>
/// (for loading it with Python transformers).
/// </summary>
public class HubDownloaderTests
{
    private const string Commit = "0123456789abcdef0123456789abcdef01234567";

    private static HubDownloadOptions Options(FakeHub hub, string cache, string? token = null) =>
        new() { Endpoint = hub.Endpoint, CacheDir = cache, Token = token, RequestTimeout = TimeSpan.FromSeconds(20), LockTimeout = TimeSpan.FromSeconds(60) };

    [Fact]
    public void Download_writes_the_python_cache_layout_with_relative_symlinks()
    {
        using var hub = new FakeHub();
        var repo = hub.AddFolder("tiny-org/llama-tiny", Fixtures.Model("llama-tiny"), Commit);
        using var cache = new TempDir();
        var progress = new List<DownloadProgress>();
        var opts = Options(hub, cache.Path, token: "hf_secret") with { Progress = new SyncProgress<DownloadProgress>(progress.Add) };

        var snapshot = HubDownloader.DownloadModel("tiny-org/llama-tiny", opts);

        var storage = Path.Combine(cache.Path, "models--tiny-org--llama-tiny");
        Assert.Equal(Path.Combine(storage, "snapshots", Commit), snapshot);
        Assert.Equal(Commit, File.ReadAllText(Path.Combine(storage, "refs", "main")));
        foreach (var (name, data) in repo.Files)
        {
            var pointer = Path.Combine(snapshot, name);
            var etag = name.EndsWith(".safetensors") ? FakeHub.Sha256(data) : FakeHub.GitSha1(data);
            Assert.Equal(Path.Combine("..", "..", "blobs", etag), new FileInfo(pointer).LinkTarget);
            Assert.Equal(data, File.ReadAllBytes(pointer));
            Assert.Equal(data, File.ReadAllBytes(Path.Combine(storage, "blobs", etag)));
        }
        Assert.True(File.Exists(Path.Combine(cache.Path, ".locks", "models--tiny-org--llama-tiny", FakeHub.Sha256(repo.Files["model.safetensors"]) + ".lock")));
        // the token goes to the hub, never to the CDN (another origin)
        Assert.All(hub.Log.Where(l => !l.StartsWith("CDN")), l => Assert.EndsWith("auth=Bearer hf_secret", l));
        Assert.All(hub.Log.Where(l => l.StartsWith("CDN")), l => Assert.EndsWith("auth=-", l));
        var weights = repo.Files["model.safetensors"].Length;
        Assert.Contains(new DownloadProgress("tiny-org/llama-tiny", "model.safetensors", weights, weights), progress);

        int gets = hub.Count("GET") + hub.Count("CDN GET");
        Assert.Equal(snapshot, HubDownloader.DownloadModel("tiny-org/llama-tiny", opts));
        Assert.Equal(gets, hub.Count("GET") + hub.Count("CDN GET"));   // second call: HEADs only
    }

    [Fact]
    public void Model_and_tokenizer_load_from_a_hub_download_then_offline()
    {
        using var hub = new FakeHub();
        hub.AddFolder("tiny-org/llama-tiny", Fixtures.Model("llama-tiny"), Commit);
        using var temp = new TempDir();
        var cacheDir = Environment.GetEnvironmentVariable("PEFT_HUB_EXPORT_CACHE") is { Length: > 0 } export ? export : temp.Path;
        var options = new FromPretrainedOptions { Endpoint = hub.Endpoint, CacheDir = cacheDir };
        var r = ModelTestUtil.Reference("llama-tiny");
        using (var scope = torch.NewDisposeScope())
        using (var model = AutoModelForCausalLM.FromPretrained("tiny-org/llama-tiny", options))
            TensorAssert.Close(r["logits"], model.forward(ModelTestUtil.ReferenceInput("llama-tiny", r)).Logits!, 1e-4, r["attention_mask"], "llama from hub download");
        var tok = AutoTokenizer.FromPretrained("tiny-org/llama-tiny", options);
        var local = AutoTokenizer.FromPretrained(Fixtures.Model("llama-tiny"));
        Assert.Equal(local.Encode("The meeting is on Monday."), tok.Encode("The meeting is on Monday."));

        hub.Dispose();
        var offline = options with { LocalFilesOnly = true, Endpoint = "http://127.0.0.1:9" };
        using (var scope = torch.NewDisposeScope())
        using (var model = AutoModelForCausalLM.FromPretrained("tiny-org/llama-tiny", offline))
            TensorAssert.Close(r["logits"], model.forward(ModelTestUtil.ReferenceInput("llama-tiny", r)).Logits!, 1e-4, r["attention_mask"], "llama offline");
        // unreachable endpoint (not offline): the cached snapshot is used, as huggingface_hub does
        Assert.Equal(Path.Combine(cacheDir, "models--tiny-org--llama-tiny", "snapshots", Commit),
            HubCache.ResolveModelDir("tiny-org/llama-tiny", options with { Endpoint = "http://127.0.0.1:9" }));
        var e = Assert.Throws<LocalEntryNotFoundException>(() => HubCache.ResolveModelDir("tiny-org/other", offline));
        Assert.Contains("models--tiny-org--other", e.Message);
        Assert.Contains("LocalFilesOnly", e.Message);
        var f = Assert.Throws<LocalEntryNotFoundException>(() => HubDownloader.DownloadFile("tiny-org/llama-tiny", "missing.json", HubDownloadOptions.From(offline)));
        Assert.Contains("missing.json", f.Message);
    }

    [Fact]
    public void Adapter_id_downloads_through_the_core_seam()
    {
        using var hub = new FakeHub();
        hub.AddFolder("user/opt-lora", Fixtures.Adapter("opt-lora"), Commit);
        using var cache = new TempDir();
        var before = AdapterSources.Hub;
        AdapterSources.Hub = new HubAdapterSource(Options(hub, cache.Path));
        try
        {
            using var scope = torch.NewDisposeScope();
            using var fromHub = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny")), "user/opt-lora");
            using var fromDir = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny")), Fixtures.Adapter("opt-lora"));
            var ids = torch.tensor(new long[] { 2, 10, 20, 30, 40 }, [1, 5]);
            var a = ((torch.nn.Module<ModelInput, ModelOutput>)fromHub).forward(new ModelInput { InputIds = ids }).Logits!;
            var b = ((torch.nn.Module<ModelInput, ModelOutput>)fromDir).forward(new ModelInput { InputIds = ids }).Logits!;
            TensorAssert.Close(b, a, 0, null, "adapter from hub");
            Assert.True(File.Exists(Path.Combine(cache.Path, "models--user--opt-lora", "snapshots", Commit, "adapter_model.safetensors")));
        }
        finally
        {
            AdapterSources.Hub = before;
        }
    }

    [Fact]
    public void Relative_redirect_of_a_renamed_repo_is_followed()
    {
        using var hub = new FakeHub();
        hub.AddFolder("tiny-org/llama-tiny", Fixtures.Model("llama-tiny"), Commit);
        hub.Repos["old-org/llama-tiny"] = new FakeHub.Repo { Commit = "unused", RenamedTo = "tiny-org/llama-tiny" };
        using var cache = new TempDir();
        var path = HubDownloader.DownloadFile("old-org/llama-tiny", "config.json", Options(hub, cache.Path));
        Assert.Equal(File.ReadAllBytes(Path.Combine(Fixtures.Model("llama-tiny"), "config.json")), File.ReadAllBytes(path));
        Assert.StartsWith(Path.Combine(cache.Path, "models--old-org--llama-tiny", "snapshots", Commit), path);
        Assert.Contains(hub.Log, l => l.StartsWith("HEAD /tiny-org/llama-tiny/resolve/main/config.json"));
    }

    [Fact]
    public void Gated_repo_needs_a_token_and_says_how_to_set_it()
    {
        using var hub = new FakeHub();
        var repo = new FakeHub.Repo { Commit = Commit, GatedToken = "hf_good" };
        repo.Files["config.json"] = Encoding.UTF8.GetBytes("{\"model_type\": \"llama\"}");
        hub.Repos["meta/gated"] = repo;
        using var cache = new TempDir();
        var none = Assert.Throws<HubAccessDeniedException>(() => HubDownloader.DownloadFile("meta/gated", "config.json", Options(hub, cache.Path)));
        Assert.Equal(401, none.StatusCode);
        Assert.Contains("HF_TOKEN", none.Message);
        Assert.Contains("meta/gated", none.Message);
        var wrong = Assert.Throws<HubAccessDeniedException>(() => HubDownloader.DownloadFile("meta/gated", "config.json", Options(hub, cache.Path, "hf_bad")));
        Assert.Equal(403, wrong.StatusCode);
        Assert.False(Directory.Exists(Path.Combine(cache.Path, "models--meta--gated", "snapshots")));
        var ok = HubDownloader.DownloadFile("meta/gated", "config.json", Options(hub, cache.Path, "hf_good"));
        Assert.Equal(repo.Files["config.json"], File.ReadAllBytes(ok));

        // the token file ($HF_TOKEN_PATH, else $HF_HOME/token) is read when no token is given
        using var home = new TempDir();
        File.WriteAllText(home.File("token"), "hf_good\n");
        var old = Environment.GetEnvironmentVariable("HF_TOKEN_PATH");
        try
        {
            Environment.SetEnvironmentVariable("HF_TOKEN_PATH", home.File("token"));
            using var cache2 = new TempDir();
            Assert.True(File.Exists(HubDownloader.DownloadFile("meta/gated", "config.json", Options(hub, cache2.Path))));
        }
        finally { Environment.SetEnvironmentVariable("HF_TOKEN_PATH", old); }
    }

    [Fact]
    public void Not_found_errors_name_the_repo_the_revision_or_the_file()
    {
        using var hub = new FakeHub();
        hub.AddFolder("tiny-org/llama-tiny", Fixtures.Model("llama-tiny"), Commit);
        using var cache = new TempDir();
        var o = Options(hub, cache.Path);
        var repo = Assert.Throws<HubRepositoryNotFoundException>(() => HubDownloader.DownloadFile("tiny-org/nope", "config.json", o));
        Assert.Contains("'tiny-org/nope' was not found", repo.Message);
        var rev = Assert.Throws<HubRevisionNotFoundException>(() => HubDownloader.DownloadFile("tiny-org/llama-tiny", "config.json", o with { Revision = "v9" }));
        Assert.Contains("revision 'v9'", rev.Message);
        var file = Assert.Throws<HubEntryNotFoundException>(() => HubDownloader.DownloadFile("tiny-org/llama-tiny", "nope.json", o));
        Assert.Contains("file 'nope.json'", file.Message);
        Assert.Throws<HubRepositoryNotFoundException>(() => HubCache.ResolveModelDir("tiny-org/nope", new FromPretrainedOptions { Endpoint = hub.Endpoint, CacheDir = cache.Path }));
        // names that would leave the cache folder are refused before any request
        Assert.Throws<ArgumentException>(() => HubDownloader.DownloadFile("tiny-org/llama-tiny", "../../etc/passwd", o));
        Assert.Throws<ArgumentException>(() => HubDownloader.DownloadFile("tiny-org/llama-tiny", "/abs.json", o));
        Assert.Throws<ArgumentException>(() => HubDownloader.DownloadFile("../x", "config.json", o));
        Assert.Throws<ArgumentException>(() => HubDownloader.DownloadFile("tiny-org/llama-tiny", "config.json", o with { Revision = "../../x" }));
    }

    [Fact]
    public void A_dropped_connection_resumes_with_a_range_request()
    {
        using var hub = new FakeHub();
        var repo = hub.AddFolder("tiny-org/llama-tiny", Fixtures.Model("llama-tiny"), Commit);
        var data = repo.Files["model.safetensors"];
        var sha = FakeHub.Sha256(data);
        hub.DropOnce[sha] = true;
        using var cache = new TempDir();
        var path = HubDownloader.DownloadFile("tiny-org/llama-tiny", "model.safetensors", Options(hub, cache.Path));
        Assert.Equal(data, File.ReadAllBytes(path));
        Assert.Contains(hub.Log, l => l.StartsWith("CDN GET") && l.Contains($"range=bytes={data.Length / 2}-"));

        // a partial file left by an earlier process is resumed too
        using var cache2 = new TempDir();
        var blobs = Path.Combine(cache2.Path, "models--tiny-org--llama-tiny", "blobs");
        Directory.CreateDirectory(blobs);
        File.WriteAllBytes(Path.Combine(blobs, sha + ".incomplete"), data[..1000]);
        path = HubDownloader.DownloadFile("tiny-org/llama-tiny", "model.safetensors", Options(hub, cache2.Path));
        Assert.Equal(data, File.ReadAllBytes(path));
        Assert.Contains(hub.Log, l => l.StartsWith("CDN GET") && l.Contains("range=bytes=1000-"));
        Assert.False(File.Exists(Path.Combine(blobs, sha + ".incomplete")));
    }

    [Fact]
    public void A_blob_whose_sha256_differs_from_its_etag_is_refused_and_not_cached()
    {
        using var hub = new FakeHub();
        var repo = new FakeHub.Repo { Commit = Commit, WrongSha = true };
        repo.Files["model.safetensors"] = File.ReadAllBytes(Path.Combine(Fixtures.Model("llama-tiny"), "model.safetensors"));
        hub.Repos["tiny-org/corrupt"] = repo;
        using var cache = new TempDir();
        var e = Assert.Throws<HubIntegrityException>(() => HubDownloader.DownloadFile("tiny-org/corrupt", "model.safetensors", Options(hub, cache.Path)));
        Assert.Contains("sha256", e.Message);
        var storage = Path.Combine(cache.Path, "models--tiny-org--corrupt");
        Assert.Empty(Directory.GetFiles(Path.Combine(storage, "blobs")));
        Assert.False(File.Exists(Path.Combine(storage, "snapshots", Commit, "model.safetensors")));
    }

    [Fact]
    public void Sharded_checkpoint_downloads_only_the_shards_the_index_names()
    {
        using var hub = new FakeHub();
        var repo = new FakeHub.Repo { Commit = Commit };
        repo.Files["config.json"] = File.ReadAllBytes(Path.Combine(Fixtures.Model("llama-tiny"), "config.json"));
        repo.Files["model.safetensors.index.json"] = Encoding.UTF8.GetBytes(
            "{\"metadata\": {}, \"weight_map\": {\"a.weight\": \"model-00001-of-00002.safetensors\", \"b.weight\": \"model-00002-of-00002.safetensors\", \"c.weight\": \"model-00001-of-00002.safetensors\"}}");
        repo.Files["model-00001-of-00002.safetensors"] = [1, 2, 3];
        repo.Files["model-00002-of-00002.safetensors"] = [4, 5, 6, 7];
        repo.Files["model-stale.safetensors"] = [9];
        repo.Files["model.safetensors"] = [8];
        hub.Repos["tiny-org/sharded"] = repo;
        using var cache = new TempDir();
        var snapshot = HubDownloader.DownloadModel("tiny-org/sharded", Options(hub, cache.Path));
        Assert.Equal(["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"],
            Directory.GetFiles(snapshot).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal([4, 5, 6, 7], File.ReadAllBytes(Path.Combine(snapshot, "model-00002-of-00002.safetensors")));

        repo.Files["model.safetensors.index.json"] = Encoding.UTF8.GetBytes("{\"weight_map\": {\"a\": \"../../../evil.safetensors\"}}");
        var evil = new FakeHub.Repo { Commit = "fedcba9876543210fedcba9876543210fedcba98" };
        foreach (var (k, v) in repo.Files) evil.Files[k] = v;
        hub.Repos["tiny-org/evil"] = evil;
        Assert.Throws<ArgumentException>(() => HubDownloader.DownloadModel("tiny-org/evil", Options(hub, cache.Path)));
    }

    [Fact]
    public async Task Two_processes_downloading_one_blob_write_it_once()
    {
        using var hub = new FakeHub();
        var repo = hub.AddFolder("tiny-org/llama-tiny", Fixtures.Model("llama-tiny"), Commit);
        hub.HoldGetUntilHeads = 2;   // the first GET waits until both processes have asked for the file
        using var cache = new TempDir();
        var asm = typeof(Program).Assembly.Location;
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { "exec", asm, "hub-child", hub.Endpoint, cache.Path, "tiny-org/llama-tiny", "model.safetensors" }) psi.ArgumentList.Add(a);
        using var child = Process.Start(psi)!;
        var own = HubDownloader.DownloadFileAsync("tiny-org/llama-tiny", "model.safetensors", Options(hub, cache.Path));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await child.WaitForExitAsync(timeout.Token);
        var childOut = await child.StandardOutput.ReadToEndAsync();
        Assert.True(child.ExitCode == 0, "child failed: " + await child.StandardError.ReadToEndAsync());
        var path = await own.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(path, childOut.Trim());
        Assert.Equal(repo.Files["model.safetensors"], File.ReadAllBytes(path));
        Assert.Equal(2, hub.Count("HEAD /tiny-org/llama-tiny/resolve/main/model.safetensors"));
        Assert.Equal(1, hub.Count("CDN GET"));   // the second writer waited on the lock and found the blob
    }

    /// <summary>IProgress that reports on the caller's thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) { lock (this) report(value); }
    }
}
