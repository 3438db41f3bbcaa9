using System.Text;
using Peft.Core.Safetensors;
using Peft.Testing;
using TorchSharp;

namespace Peft.Core.Tests.Safetensors;

public class SafetensorsMalformedTests
{
    private static byte[] Build(string header, int dataBytes, long? declaredLength = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        return Build(h, dataBytes, declaredLength);
    }

    private static byte[] Build(byte[] h, int dataBytes, long? declaredLength = null)
    {
        var ms = new MemoryStream();
        ms.Write(BitConverter.GetBytes((ulong)(declaredLength ?? h.Length)));
        ms.Write(h);
        ms.Write(new byte[dataBytes]);
        return ms.ToArray();
    }

    private static InvalidDataException Fails(byte[] content, string name = "bad.safetensors")
    {
        using var tmp = new TempDir();
        var path = tmp.File(name);
        File.WriteAllBytes(path, content);
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        return e;
    }

    [Fact]
    public void ShorterThanTheLengthPrefix() =>
        Assert.Contains("shorter than the 8-byte", Fails([1, 2, 3]).Message);

    [Fact]
    public void HeaderLengthLargerThanFile() =>
        Assert.Contains("header length 1000 is larger", Fails(Build("{}", 0, declaredLength: 1000)).Message);

    [Fact]
    public void HeaderNotUtf8() =>
        Assert.Contains("not valid UTF-8", Fails(Build(new byte[] { (byte)'{', 0xC3, 0x28, (byte)'}' }, 0)).Message);

    [Fact]
    public void HeaderNotJson() =>
        Assert.Contains("not valid JSON", Fails(Build("{\"a\": [", 0)).Message);

    [Fact]
    public void HeaderNotAnObject() =>
        Assert.Contains("must be a JSON object", Fails(Build("[1, 2]", 0)).Message);

    [Fact]
    public void UnknownDtype()
    {
        var e = Fails(Build("{\"w\":{\"dtype\":\"F128\",\"shape\":[2],\"data_offsets\":[0,32]}}", 32));
        Assert.Contains("'w'", e.Message);
        Assert.Contains("F128", e.Message);
    }

    [Fact]
    public void ShapeTimesDtypeDoesNotMatchByteRange()
    {
        var e = Fails(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20));
        Assert.Contains("'w'", e.Message);
        Assert.Contains("24 bytes", e.Message);
    }

    [Fact]
    public void OffsetsOutOfRange()
    {
        var e = Fails(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8));
        Assert.Contains("'w'", e.Message);
        Assert.Contains("past the end", e.Message);
    }

    [Fact]
    public void OverlappingOffsets()
    {
        var e = Fails(Build(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12));
        Assert.Contains("'b'", e.Message);
        Assert.Contains("overlap", e.Message);
    }

    [Fact]
    public void GapBetweenTensors()
    {
        var e = Fails(Build(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12));
        Assert.Contains("'b'", e.Message);
        Assert.Contains("gap", e.Message);
    }

    [Fact]
    public void TrailingBytesNotCoveredByAnyTensor() =>
        Assert.Contains("cover 4 bytes but the data area has 8", Fails(Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8)).Message);

    [Fact]
    public void OffsetsEndBeforeTheyBegin() =>
        Assert.Contains("end before they begin", Fails(Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4)).Message);

    [Fact]
    public void DuplicateNames()
    {
        var e = Fails(Build(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8));
        Assert.Contains("'a'", e.Message);
        Assert.Contains("twice", e.Message);
    }

    [Fact]
    public void NegativeShape() =>
        Assert.Contains("non-negative", Fails(Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4)).Message);

    [Fact]
    public void MetadataMustBeStrings() =>
        Assert.Contains("__metadata__", Fails(Build("{\"__metadata__\":{\"x\":1}}", 0)).Message);

    [Fact]
    public void MissingFileIsFileNotFound()
    {
        var e = Assert.Throws<FileNotFoundException>(() => SafetensorsFile.Open("/nonexistent/x.safetensors"));
        Assert.Contains("/nonexistent/x.safetensors", e.Message);
    }

    [Fact]
    public void FailedWriteLeavesNothingBehind()
    {
        using var tmp = new TempDir();
        var target = tmp.File("out.safetensors");
        using var ok = torch.ones(3);
        using var complex = torch.zeros(2, dtype: torch.ScalarType.ComplexFloat32);
        Assert.Throws<ArgumentException>(() =>
            SafetensorsWriter.Save(target, new Dictionary<string, torch.Tensor> { ["ok"] = ok, ["c"] = complex }));
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void FailedWriteKeepsThePreviousFile()
    {
        using var tmp = new TempDir();
        var target = tmp.File("out.safetensors");
        using var ok = torch.ones(3);
        SafetensorsWriter.Save(target, new Dictionary<string, torch.Tensor> { ["ok"] = ok });
        var before = File.ReadAllBytes(target);
        using var complex = torch.zeros(2, dtype: torch.ScalarType.ComplexFloat32);
        Assert.ThrowsAny<Exception>(() =>
            Peft.Core.IO.AtomicFile.Write(target, s => { s.Write(new byte[10]); throw new IOException("disk full"); }));
        Assert.Equal(before, File.ReadAllBytes(target));
        Assert.Single(Directory.EnumerateFileSystemEntries(tmp.Path));
    }
}
