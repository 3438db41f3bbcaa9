using System.Text.Json;
using Peft.Core.Safetensors;
using Peft.Testing;
using TorchSharp;

namespace Peft.Core.Tests.Safetensors;

public class SafetensorsWriterTests
{
    [Theory]
    [InlineData(torch.ScalarType.Float32)]
    [InlineData(torch.ScalarType.Float64)]
    [InlineData(torch.ScalarType.Float16)]
    [InlineData(torch.ScalarType.BFloat16)]
    [InlineData(torch.ScalarType.Int64)]
    [InlineData(torch.ScalarType.Int32)]
    [InlineData(torch.ScalarType.Int16)]
    [InlineData(torch.ScalarType.Int8)]
    [InlineData(torch.ScalarType.Byte)]
    [InlineData(torch.ScalarType.Bool)]
    public void EveryDtypeRoundTrips(torch.ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        var src = (torch.randn(3, 5, generator: new torch.Generator(7)) * 50).to_type(dtype);
        var scalar = torch.tensor(3.0).to_type(dtype);
        var empty = torch.zeros(0, 4).to_type(dtype);
        var path = tmp.File("t.safetensors");
        SafetensorsWriter.Save(path, new Dictionary<string, torch.Tensor> { ["x"] = src, ["s"] = scalar, ["e"] = empty });
        using var f = SafetensorsFile.Open(path);
        var back = f.GetTensor("x");
        Assert.Equal(dtype, back.dtype);
        Assert.True(src.eq(back).all().item<bool>());
        Assert.Empty(f.GetTensor("s").shape);
        Assert.Equal(new long[] { 0, 4 }, f.GetTensor("e").shape);
    }

    [Fact]
    public void NonContiguousTensorsAreWrittenInLogicalOrder()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        var t = torch.arange(12, dtype: torch.ScalarType.Float32).reshape(3, 4).t();
        var path = tmp.File("t.safetensors");
        SafetensorsWriter.Save(path, new Dictionary<string, torch.Tensor> { ["t"] = t });
        var back = SafetensorsIO.LoadFile(path)["t"];
        Assert.True(t.eq(back).all().item<bool>());
    }

    [Fact]
    public void HeaderIsCompactPaddedAndOrderedLikeTheReference()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        var path = tmp.File("t.safetensors");
        SafetensorsWriter.Save(path, new Dictionary<string, torch.Tensor>
        {
            ["b.weight"] = torch.ones(2),
            ["a.mask"] = torch.ones(2, dtype: torch.ScalarType.Int64),
            ["a.weight"] = torch.ones(2),
            ["h"] = torch.ones(2, dtype: torch.ScalarType.Float16),
        }, new Dictionary<string, string> { ["format"] = "pt" });
        var bytes = File.ReadAllBytes(path);
        long n = BitConverter.ToInt64(bytes, 0);
        Assert.Equal(0, n % 8);
        var header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assert.StartsWith("{\"__metadata__\":{\"format\":\"pt\"},\"a.mask\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},\"a.weight\"", header);
        var order = JsonDocument.Parse(header).RootElement.EnumerateObject().Select(p => p.Name).ToArray();
        Assert.Equal(new[] { "__metadata__", "a.mask", "a.weight", "b.weight", "h" }, order);
    }

    [Fact]
    public void ShardedCheckpointLoadsThroughItsIndex()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        SafetensorsWriter.Save(tmp.File("model-00001-of-00002.safetensors"), new Dictionary<string, torch.Tensor> { ["a"] = torch.ones(2) });
        SafetensorsWriter.Save(tmp.File("model-00002-of-00002.safetensors"), new Dictionary<string, torch.Tensor> { ["b"] = torch.full(3, 2f) });
        File.WriteAllText(tmp.File("model.safetensors.index.json"),
            "{\"metadata\":{\"total_size\":20},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\"}}");
        using var ckpt = SafetensorsCheckpoint.OpenFolder(tmp.Path);
        Assert.Equal(new[] { "a", "b" }, ckpt.Keys);
        Assert.Equal(6f, ckpt.GetTensor("b").sum().item<float>());
        Assert.Equal(2, ckpt.Files.Count);
    }

    [Fact]
    public void ShardedIndexNamingAMissingTensorFails()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        SafetensorsWriter.Save(tmp.File("s1.safetensors"), new Dictionary<string, torch.Tensor> { ["a"] = torch.ones(2) });
        File.WriteAllText(tmp.File("model.safetensors.index.json"), "{\"weight_map\":{\"a\":\"s1.safetensors\",\"zz\":\"s1.safetensors\"}}");
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsCheckpoint.OpenFolder(tmp.Path));
        Assert.Contains("'zz'", e.Message);
    }

    [Fact]
    public void DeviceAndDtypeConversionOnLoad()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        var path = tmp.File("t.safetensors");
        SafetensorsWriter.Save(path, new Dictionary<string, torch.Tensor> { ["x"] = torch.ones(2, 2) });
        using var f = SafetensorsFile.Open(path);
        var bf = f.GetTensor("x", torch.ScalarType.BFloat16, torch.CPU);
        Assert.Equal(torch.ScalarType.BFloat16, bf.dtype);
        Assert.Equal(4f, bf.to_type(torch.ScalarType.Float32).sum().item<float>());
    }
}
