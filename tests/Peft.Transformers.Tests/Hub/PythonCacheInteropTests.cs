using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json.Nodes;
using Peft.Testing;
using Peft.Transformers.Hub;
using Peft.Transformers.Tests.Models;
using TorchSharp;

namespace Peft.Transformers.Tests.Hub;

/// <summary>
/// A cache written by Python's huggingface_hub 1.33 (hf_hub_download from a fake hub on the GPU machine; References/
/// py_cache.tar.gz, made by tools/chat-template-ref/make_refs.py) is read offline by our loaders. hub_interop.json also
/// records the other direction from that run: Python transformers loaded the cache our downloader wrote
/// (Model_and_tokenizer_load_from_a_hub_download_then_offline with PEFT_HUB_EXPORT_CACHE) with logits equal to the fixture's.
/// </summary>
public class PythonCacheInteropTests
{
    private static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Hub", "References");

    [Fact]
    public void A_cache_written_by_huggingface_hub_loads_offline()
    {
        var interop = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "hub_interop.json")))!;
        Assert.Equal("ok", interop["python_download"]!.GetValue<string>());
        Assert.True(interop["cs_cache_load"]!["ok"]!.GetValue<bool>());
        Assert.Equal(0.0, interop["cs_cache_load"]!["max_abs_logit_diff"]!.GetValue<double>());

        using var tmp = new TempDir();
        using (var gz = new GZipStream(File.OpenRead(Path.Combine(Dir, "py_cache.tar.gz")), CompressionMode.Decompress))
            TarFile.ExtractToDirectory(gz, tmp.Path, overwriteFiles: false);
        var cache = Path.Combine(tmp.Path, "py_cache");
        var commit = interop["commit"]!.GetValue<string>();
        var options = new FromPretrainedOptions { CacheDir = cache, LocalFilesOnly = true };
        Assert.Equal(Path.Combine(cache, "models--py-org--llama-tiny", "snapshots", commit), HubCache.ResolveModelDir("py-org/llama-tiny", options));
        // Python's snapshot entries are relative symlinks into blobs/
        Assert.StartsWith(Path.Combine("..", "..", "blobs"), new FileInfo(Path.Combine(cache, "models--py-org--llama-tiny", "snapshots", commit, "config.json")).LinkTarget);
        var r = ModelTestUtil.Reference("llama-tiny");
        using var scope = torch.NewDisposeScope();
        using var model = AutoModelForCausalLM.FromPretrained("py-org/llama-tiny", options);
        TensorAssert.Close(r["logits"], model.forward(ModelTestUtil.ReferenceInput("llama-tiny", r)).Logits!, 1e-4, r["attention_mask"], "llama from a Python-made cache");
        Assert.Equal(AutoTokenizer.FromPretrained(Fixtures.Model("llama-tiny")).Encode("Grüße 世界"), AutoTokenizer.FromPretrained("py-org/llama-tiny", options).Encode("Grüße 世界"));
        var file = HubDownloader.DownloadFile("py-org/llama-tiny", "model.safetensors", new HubDownloadOptions { CacheDir = cache, LocalFilesOnly = true });
        Assert.Equal(interop["files"]!["model.safetensors"]!["size"]!.GetValue<long>(), ((FileInfo)new FileInfo(file).ResolveLinkTarget(true)!).Length);
    }
}
