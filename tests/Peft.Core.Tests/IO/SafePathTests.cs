using Peft.Core;
using Peft.Core.IO;
using Peft.Core.Safetensors;
using Peft.Core.Tests.Tuners;
using Peft.Testing;

namespace Peft.Core.Tests.IO;

/// <summary>Path-escape refusal: names with '..', absolute paths and symlinks out of the folder, at each Peft.Core entry point.</summary>
public sealed class SafePathTests
{
    [Theory]
    [InlineData("..")]
    [InlineData("../x")]
    [InlineData("a/../../x")]
    [InlineData("/etc/passwd")]
    [InlineData("")]
    public void Resolve_refuses_names_that_leave_the_folder(string name)
    {
        using var dir = new TempDir();
        var e = Assert.Throws<InvalidDataException>(() => SafePath.Resolve(dir.Path, name, "index.json: shard", fromFile: true));
        Assert.Contains("index.json", e.Message);
    }

    [Fact]
    public void Resolve_accepts_a_subfolder_and_refuses_a_symlink_out()
    {
        using var dir = new TempDir();
        using var outside = new TempDir();
        Directory.CreateDirectory(dir.File("sub"));
        Assert.Equal(Path.Combine(dir.Path, "sub", "a.bin"), SafePath.Resolve(dir.Path, "sub/a.bin", "x"));
        File.CreateSymbolicLink(dir.File("link.bin"), outside.File("secret.bin"));
        Directory.CreateSymbolicLink(dir.File("linkdir"), outside.Path);
        Assert.Throws<ArgumentException>(() => SafePath.Resolve(dir.Path, "link.bin", "x"));
        var e = Assert.Throws<ArgumentException>(() => SafePath.Resolve(dir.Path, "linkdir/a.bin", "data file"));
        Assert.Contains("outside", e.Message);
    }

    [Fact]
    public void A_symlink_inside_the_folder_and_a_hub_cache_blob_link_are_allowed()
    {
        using var root = new TempDir();
        var snap = Path.Combine(root.Path, "models--org--m", "snapshots", "abc");
        var blobs = Path.Combine(root.Path, "models--org--m", "blobs");
        Directory.CreateDirectory(snap);
        Directory.CreateDirectory(blobs);
        File.WriteAllText(Path.Combine(blobs, "h1"), "{}");
        File.CreateSymbolicLink(Path.Combine(snap, "config.json"), "../../blobs/h1");
        SafePath.EnsureInside(snap, Path.Combine(snap, "config.json"), "config");
        File.WriteAllText(root.File("real.txt"), "x");
        File.CreateSymbolicLink(root.File("alias.txt"), root.File("real.txt"));
        SafePath.EnsureInside(root.Path, root.File("alias.txt"), "alias");
    }

    [Theory]
    [InlineData("../up")]
    [InlineData("a/b")]
    [InlineData("/abs")]
    [InlineData("..")]
    public void Adapter_names_that_are_not_plain_names_are_refused(string name)
    {
        using var pm = PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig { R = 2, TargetModules = ["lin0"] });
        var e = Assert.Throws<ArgumentException>(() => pm.AddAdapter(name, new LoraConfig { R = 2, TargetModules = ["lin0"] }));
        Assert.Contains("Adapter name", e.Message);
        Assert.Throws<ArgumentException>(() => PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig { R = 2, TargetModules = ["lin0"] }, name));
        // refused before the folder (or a hub id) is looked at: the folder does not even exist
        using var missing = new TempDir();
        var nowhere = missing.File("no-such-adapter");
        Assert.Contains("Adapter name", Assert.Throws<ArgumentException>(() => pm.LoadAdapter(nowhere, name)).Message);
        Assert.Contains("Adapter name", Assert.Throws<ArgumentException>(() => PeftModel.FromPretrained(new TinyMlp(), nowhere, adapterName: name)).Message);
    }

    [Fact]
    public void SavePretrained_does_not_follow_an_adapter_folder_symlink_out_of_the_target()
    {
        using var dir = new TempDir();
        using var outside = new TempDir();
        using var pm = PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig { R = 2, TargetModules = ["lin0"] });
        pm.AddAdapter("other", new LoraConfig { R = 2, TargetModules = ["lin0"] });
        Directory.CreateSymbolicLink(dir.File("other"), outside.Path);
        var e = Assert.Throws<ArgumentException>(() => pm.SavePretrained(dir.Path));
        Assert.Contains("outside", e.Message);
        Assert.Empty(Directory.GetFiles(outside.Path));
    }

    [Fact]
    public void Adapter_weights_linked_from_outside_the_folder_are_refused_before_reading()
    {
        using var dir = new TempDir();
        using var outside = new TempDir();
        using var pm = PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig { R = 2, TargetModules = ["lin0"] });
        pm.SavePretrained(outside.Path);
        File.Copy(Path.Combine(outside.Path, "adapter_config.json"), dir.File("adapter_config.json"));
        File.CreateSymbolicLink(dir.File("adapter_model.safetensors"), Path.Combine(outside.Path, "adapter_model.safetensors"));
        var e = Assert.Throws<ArgumentException>(() => PeftModel.FromPretrained(new TinyMlp(), dir.Path));
        Assert.Contains("adapter_model.safetensors", e.Message);
    }

    [Theory]
    [InlineData("../model-00001.safetensors")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/../../x.safetensors")]
    public void Sharded_index_file_names_that_leave_the_folder_are_refused_naming_the_index(string shard)
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("model.safetensors.index.json"), $"{{\"weight_map\": {{\"w\": \"{shard}\"}}}}");
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsCheckpoint.OpenFolder(dir.Path));
        Assert.Contains("model.safetensors.index.json", e.Message);
    }

    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("model.safetensors.index.json")]
    public void Model_weights_linked_from_outside_the_folder_are_refused_before_reading(string file)
    {
        using var dir = new TempDir();
        using var outside = new TempDir();
        var target = outside.File(file);
        if (file.EndsWith(".json", StringComparison.Ordinal)) File.WriteAllText(target, "{\"weight_map\": {}}");
        else SafetensorsIO.SaveFile(new Dictionary<string, TorchSharp.torch.Tensor>(StringComparer.Ordinal), target);
        File.CreateSymbolicLink(dir.File(file), target);
        var e = Assert.Throws<ArgumentException>(() => SafetensorsCheckpoint.OpenFolder(dir.Path));
        Assert.Contains(file, e.Message);
        Assert.Contains("outside", e.Message);
    }

    [Fact]
    public void A_safetensors_header_over_100_MB_is_refused_before_reading_it()
    {
        using var dir = new TempDir();
        var path = dir.File("big.safetensors");
        using (var fs = File.Create(path))
        {
            fs.Write(BitConverter.GetBytes(100_000_001UL));
            fs.SetLength(8 + 100_000_001L + 16); // sparse: the length is plausible for the file, only the limit refuses it
        }
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains("exceeds the limit", e.Message);
        Assert.Contains("big.safetensors", e.Message);
    }
}
