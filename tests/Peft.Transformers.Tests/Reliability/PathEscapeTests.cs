using Peft.Testing;
using Peft.Transformers;

namespace Peft.Transformers.Tests.Reliability;

/// <summary>
/// Path escapes at the Peft.Transformers entry points: saving a model / tokenizer into a folder whose files are symlinks
/// to files outside replaces the links (atomic rename) and never writes through them; a model folder whose weights are a
/// symlink to a file outside is refused before reading; a string that is neither a folder nor a valid hub id (<c>..</c>,
/// absolute) is refused before any cache lookup or request. (Adapter names, sharded-index names, adapter files:
/// Peft.Core.Tests SafePathTests; hub file names and revisions: HubDownloaderTests; data_files: DataFilesPathTests;
/// checkpoint manifests: CheckpointValidationTests.)
/// </summary>
public sealed class PathEscapeTests
{
    [Fact]
    public void Saving_a_model_and_tokenizer_replaces_symlinks_to_outside_files_instead_of_writing_through_them()
    {
        using var dir = new TempDir();
        using var outside = new TempDir();
        string[] files = ["model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"];
        foreach (var f in files)
        {
            File.WriteAllText(outside.File(f), "precious");
            File.CreateSymbolicLink(dir.File(f), outside.File(f));
        }
        using (var lm = AutoModelForCausalLM.FromPretrained(Fixtures.Model("gpt2-tiny")))
            lm.SavePretrained(dir.Path);
        AutoTokenizer.FromPretrained(Fixtures.Model("gpt2-tiny")).SavePretrained(dir.Path);
        foreach (var f in files)
        {
            Assert.Equal("precious", File.ReadAllText(outside.File(f)));
            Assert.Null(new FileInfo(dir.File(f)).LinkTarget);
        }
        using var reloaded = AutoModelForCausalLM.FromPretrained(dir.Path);
        Assert.NotNull(AutoTokenizer.FromPretrained(dir.Path));
    }

    [Fact]
    public void A_model_folder_whose_weights_link_outside_is_refused_naming_the_file()
    {
        using var dir = new TempDir();
        using var outside = new TempDir();
        File.Copy(Path.Combine(Fixtures.Model("gpt2-tiny"), "config.json"), dir.File("config.json"));
        File.Copy(Path.Combine(Fixtures.Model("gpt2-tiny"), "model.safetensors"), outside.File("model.safetensors"));
        File.CreateSymbolicLink(dir.File("model.safetensors"), outside.File("model.safetensors"));
        var e = Assert.Throws<ArgumentException>(() => AutoModelForCausalLM.FromPretrained(dir.Path));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("outside", e.Message);
    }

    [Theory]
    [InlineData("org/../../etc")]
    [InlineData("../x")]
    [InlineData("org/a..b")]
    [InlineData("/no/such/folder")]
    [InlineData("a/b/c")]
    public void A_string_that_is_neither_a_folder_nor_a_hub_id_is_refused_before_any_lookup(string pathOrId)
    {
        using var cache = new TempDir();
        var options = new FromPretrainedOptions { CacheDir = cache.Path, Endpoint = "http://127.0.0.1:9" };
        var e = Assert.Throws<DirectoryNotFoundException>(() => HubCache.ResolveModelDir(pathOrId, options));
        Assert.Contains("neither a local folder nor a hub id", e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(cache.Path));
        Assert.Null(new Peft.Transformers.Hub.HubAdapterSource().Resolve(pathOrId, null));
    }
}
