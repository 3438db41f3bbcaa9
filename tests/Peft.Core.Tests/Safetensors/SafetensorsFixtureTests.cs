using Peft.Core.Safetensors;
using Peft.Testing;
using TorchSharp;

namespace Peft.Core.Tests.Safetensors;

public class SafetensorsFixtureTests
{
    public static TheoryData<string> FixtureFiles()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.EnumerateFiles(Fixtures.Hf, "*.safetensors", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetRelativePath(Fixtures.Hf, f));
        }
        return data;
    }

    [Fact]
    public void EveryFixtureFolderHasSafetensorsFiles()
    {
        // Guards the theory below against silently running on nothing.
        int n = FixtureFiles().Count;
        Assert.True(n >= 40, $"found only {n} fixture files under {Fixtures.Hf}");
    }

    [Theory]
    [MemberData(nameof(FixtureFiles))]
    public void FixtureLoadsAndRoundTripsByteIdentically(string relative)
    {
        var path = Path.Combine(Fixtures.Hf, relative);
        using var tmp = new TempDir();
        var copy = tmp.File("copy.safetensors");
        var fromDict = tmp.File("dict.safetensors");
        using (var f = SafetensorsFile.Open(path))
        {
            Assert.NotEmpty(f.Tensors);
            // Every tensor materialises with the header's shape and dtype.
            using var scope = torch.NewDisposeScope();
            foreach (var info in f.Tensors)
            {
                var t = f.GetTensor(info.Name);
                Assert.Equal(info.Shape, t.shape);
                Assert.Equal(SafetensorsDtype.ToScalarType(info.Dtype), t.dtype);
            }
            SafetensorsWriter.Copy(f, copy);
            // Writing from a name -> tensor map lays the file out as the reference writer does.
            var all = f.ReadAll();
            SafetensorsWriter.Save(fromDict, all, f.Metadata);
        }
        var original = File.ReadAllBytes(path);
        Assert.Equal(original, File.ReadAllBytes(copy));
        Assert.Equal(original, File.ReadAllBytes(fromDict));
    }

    [Fact]
    public void MetadataIsPreserved()
    {
        using var f = SafetensorsFile.Open(Path.Combine(Fixtures.Hf, "models", "gpt2-tiny", "model.safetensors"));
        Assert.NotNull(f.Metadata);
        Assert.Equal("pt", f.Metadata!["format"]);
    }

    [Fact]
    public void ValuesMatchTheRawLittleEndianBytes()
    {
        var path = Path.Combine(Fixtures.Hf, "references", "gpt2-tiny.forward.safetensors");
        using var f = SafetensorsFile.Open(path);
        var info = f.GetInfo("input_ids");
        var raw = File.ReadAllBytes(path);
        long dataStart = 8 + f.HeaderLength;
        using var t = f.GetTensor("input_ids");
        var ids = t.data<long>().ToArray();
        for (int i = 0; i < ids.Length; i++)
        {
            Assert.Equal(BitConverter.ToInt64(raw, (int)(dataStart + info.Begin + 8 * i)), ids[i]);
        }
    }
}
