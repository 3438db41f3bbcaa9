using System.Collections;
using Peft.Datasets;
using Peft.Testing;

namespace Peft.Datasets.Tests;

public class DatasetExportTests
{
    private static Dataset Sample() => Dataset.FromDict(new Dictionary<string, IList>
    {
        ["text"] = new List<string?> { "a, \"quoted\"\nline", "Ünïcödé 漢字", null },
        ["label"] = new List<string> { "work", "art", "work" },
        ["score"] = new List<double> { 0.5, 1.25, -2 },
        ["ids"] = new List<int[]> { new[] { 1, 2 }, new int[0], new[] { 3 } },
        ["flag"] = new[] { true, false, true },
    }).CastColumn("label", new ClassLabel(["computers", "politics", "science", "work", "art"]));

    [Fact]
    public void ParquetRoundTripKeepsTypesAndClassLabelNames()
    {
        using var tmp = new TempDir();
        var ds = Sample().Shuffle(seed: 2);
        ds.ToParquet(tmp.File("out.parquet"));
        var back = DatasetLoader.LoadDataset("parquet", tmp.File("out.parquet"))["train"];
        Assert.Equal(ds.ColumnNames, back.ColumnNames);
        Assert.Equal(ds.Features.ToString(), back.Features.ToString());
        Assert.Equal(ds.Column<string?>("text"), back.Column<string?>("text"));
        Assert.Equal(ds.Column<long>("label"), back.Column<long>("label"));
        Assert.Equal(ds.Column<double>("score"), back.Column<double>("score"));
        Assert.Equal(ds.Column<int[]>("ids"), back.Column<int[]>("ids"));
        Assert.Equal(ds.Column<bool>("flag"), back.Column<bool>("flag"));
        Assert.Empty(Directory.GetFiles(tmp.Path, "*.tmp"));
    }

    [Fact]
    public void JsonLinesAndCsvRoundTrip()
    {
        using var tmp = new TempDir();
        var ds = Sample();
        ds.ToJson(tmp.File("out.jsonl"));
        var j = DatasetLoader.LoadDataset("json", tmp.File("out.jsonl"))["train"];
        Assert.Equal(ds.Column<string?>("text"), j.Column<string?>("text"));
        Assert.Equal(new Value("int64"), j.Features["label"]);          // JSON keeps ids, not the names
        Assert.Equal(ds.Column<long>("label"), j.Column<long>("label"));
        Assert.Equal(ds.Column<double>("score"), j.Column<double>("score"));
        Assert.Equal([[1L, 2], [], [3]], j.Column<long[]>("ids"));
        Assert.Equal(ds.Column<bool>("flag"), j.Column<bool>("flag"));

        var dropped = ds.RemoveColumns("ids");
        dropped.ToCsv(tmp.File("out.csv"));
        var c = DatasetLoader.LoadDataset("csv", tmp.File("out.csv"))["train"];
        Assert.Equal(dropped.Column<string?>("text"), c.Column<string?>("text"));
        Assert.Equal(new Value("float64"), c.Features["score"]);
        Assert.Equal(dropped.Column<double>("score"), c.Column<double>("score"));
        Assert.Equal(new Value("bool"), c.Features["flag"]);
        Assert.Equal(dropped.Column<bool>("flag"), c.Column<bool>("flag"));
    }
}
