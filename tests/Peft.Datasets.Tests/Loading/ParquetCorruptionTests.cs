using Peft.Testing;

namespace Peft.Datasets.Tests.Loading;

/// <summary>
/// Corrupt Parquet metadata that made Parquet.Net loop forever or allocate a claimed size is refused, naming the file,
/// before Parquet.Net reads it (tests/Peft.Fuzz/Regressions/dataset-parquet keeps the fuzzer's case).
/// </summary>
public class ParquetCorruptionTests
{
    private static byte[] ValidFile(TempDir tmp)
    {
        var ds = Dataset.FromRows(Enumerable.Range(0, 50).Select(i =>
            (IReadOnlyDictionary<string, object?>)new Dictionary<string, object?> { ["id"] = (long)i, ["text"] = $"row {i}" }));
        var path = tmp.File("valid.parquet");
        ds.ToParquet(path);
        return File.ReadAllBytes(path);
    }

    private static void AssertRefusedQuickly(byte[] bytes, TempDir tmp, string expected)
    {
        var path = tmp.File("bad.parquet");
        File.WriteAllBytes(path, bytes);
        var task = Task.Run(() => DatasetLoader.LoadDataset("parquet", path));
        Assert.True(Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(60))).GetAwaiter().GetResult() == task, "the load did not end within 60 s");
        var e = Assert.Throws<DatasetLoadException>(() => task.GetAwaiter().GetResult());
        Assert.Contains("bad.parquet", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    /// <summary>Encodes a compact-protocol i32 field header (delta 1) and zigzag varint value.</summary>
    private static byte[] I32Field(int value)
    {
        var bytes = new List<byte> { 0x15 };
        uint z = (uint)((value << 1) ^ (value >> 31));
        do
        {
            byte b = (byte)(z & 0x7F);
            z >>= 7;
            bytes.Add(z != 0 ? (byte)(b | 0x80) : b);
        }
        while (z != 0);
        return [.. bytes];
    }

    /// <summary>
    /// The first page header (at byte 4) starts with three i32 fields: type, uncompressed size, compressed size.
    /// Returns the file with field <paramref name="which"/> (2 or 3) replaced (later bytes shift; the footer is found
    /// from the end, and the first column's first page is checked before anything after it).
    /// </summary>
    private static byte[] PatchFirstPageHeader(byte[] file, int which, int value)
    {
        int pos = 4;
        var fields = new List<(int Start, int End)>();
        for (int f = 0; f < 3; f++)
        {
            Assert.Equal(0x15, file[pos]);
            int start = pos++;
            while ((file[pos] & 0x80) != 0) pos++;
            pos++;
            fields.Add((start, pos));
        }
        var (s, e) = fields[which - 1];
        return [.. file[..s], .. I32Field(value), .. file[e..]];
    }

    [Fact]
    public void Page_whose_size_points_back_at_itself_is_refused_instead_of_looping()
    {
        using var tmp = new TempDir();
        AssertRefusedQuickly(PatchFirstPageHeader(ValidFile(tmp), 3, -5), tmp, "compressed bytes");
    }

    [Fact]
    public void Page_claiming_a_huge_decompressed_size_is_refused_before_allocating()
    {
        using var tmp = new TempDir();
        AssertRefusedQuickly(PatchFirstPageHeader(ValidFile(tmp), 2, int.MaxValue), tmp, "once decompressed");
    }

    [Fact]
    public void Page_running_past_the_data_region_is_refused()
    {
        using var tmp = new TempDir();
        AssertRefusedQuickly(PatchFirstPageHeader(ValidFile(tmp), 3, 1 << 30), tmp, "the data region ends");
    }

    [Fact]
    public void Footer_cut_inside_a_varint_is_refused_instead_of_looping()
    {
        using var tmp = new TempDir();
        var file = ValidFile(tmp);
        // Footer length shortened by one byte: the footer now ends one byte early, inside its last struct.
        int footerLength = BitConverter.ToInt32(file, file.Length - 8);
        var cut = file[..(file.Length - 9)].Concat(BitConverter.GetBytes(footerLength - 1)).Concat("PAR1"u8.ToArray()).ToArray();
        AssertRefusedQuickly(cut, tmp, "Parquet footer is corrupt");
    }

    [Fact]
    public void Footer_length_larger_than_the_file_is_refused()
    {
        using var tmp = new TempDir();
        var file = ValidFile(tmp);
        BitConverter.GetBytes(file.Length).CopyTo(file, file.Length - 8);
        AssertRefusedQuickly(file, tmp, "does not fit");
    }

    [Fact]
    public void Valid_file_with_many_pages_still_loads()
    {
        using var tmp = new TempDir();
        var ds = Dataset.FromRows(Enumerable.Range(0, 20_000).Select(i =>
            (IReadOnlyDictionary<string, object?>)new Dictionary<string, object?> { ["id"] = (long)i, ["text"] = new string('x', i % 97) }));
        var path = tmp.File("big.parquet");
        ds.ToParquet(path);
        var back = DatasetLoader.LoadDataset("parquet", path)["train"];
        Assert.Equal(20_000, back.NumRows);
        Assert.Equal(new string('x', 19_999 % 97), back[19_999]["text"]);
    }
}
