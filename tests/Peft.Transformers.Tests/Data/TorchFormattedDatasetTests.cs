using System.Collections;
using Peft.Datasets;
using Peft.Transformers.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Data;

public class TorchFormattedDatasetTests
{
    private static Dataset Make() => Dataset.FromDict(new Dictionary<string, IList>
    {
        ["text"] = new List<string> { "a", "b", "c", "d", "e" },
        ["label"] = new List<long> { 0, 1, 2, 1, 0 },
        ["input_ids"] = new List<int[]> { new[] { 1, 2, 3 }, new[] { 4, 5, 6 }, new[] { 7, 8, 9 }, new[] { 10, 11, 12 }, new[] { 13, 14, 15 } },
        ["weight"] = new List<double> { 0.5, 1, 1.5, 2, 2.5 },
    });

    [Fact]
    public void BatchesStackColumnsIntoInt64AndFloat32Tensors()
    {
        var fmt = Make().WithFormat("torch");
        Assert.Equal(["label", "input_ids", "weight"], fmt.Columns);   // strings left out, as HF
        using var scope = NewDisposeScope();
        var batches = fmt.Batches(2).ToList();
        Assert.Equal(3, batches.Count);
        var first = batches[0];
        Assert.Equal(ScalarType.Int64, first["input_ids"].dtype);
        Assert.Equal([2L, 3L], first["input_ids"].shape);
        Assert.Equal([1L, 2, 3, 4, 5, 6], first["input_ids"].data<long>().ToArray());
        Assert.Equal(ScalarType.Int64, first["label"].dtype);
        Assert.Equal([0L, 1L], first["label"].data<long>().ToArray());
        Assert.Equal(ScalarType.Float32, first["weight"].dtype);
        Assert.Equal([0.5f, 1f], first["weight"].data<float>().ToArray());
        Assert.Equal([1L, 3L], batches[2]["input_ids"].shape);
        var ordered = fmt.Batches(2, order: [4, 0], dropLast: true).Single();
        Assert.Equal([13L, 14, 15, 1, 2, 3], ordered["input_ids"].data<long>().ToArray());
        var row = fmt[3];
        Assert.Equal(0, row["label"].dim());
        Assert.Equal(1L, row["label"].item<long>());
        Assert.Equal([10L, 11, 12], row["input_ids"].data<long>().ToArray());
    }

    [Fact]
    public void RaggedListsAndStringColumnsFailWithTheColumnName()
    {
        var ragged = Dataset.FromDict(new Dictionary<string, IList>
        {
            ["input_ids"] = new List<int[]> { new[] { 1, 2 }, new[] { 3 } },
            ["text"] = new List<string> { "x", "y" },
        });
        var e = Assert.Throws<InvalidOperationException>(() => ragged.WithFormat("torch", ["input_ids"]).GetBatch([0, 1]));
        Assert.Contains("'input_ids'", e.Message);
        var e2 = Assert.Throws<ArgumentException>(() => ragged.WithFormat("torch", ["text"]));
        Assert.Contains("'text'", e2.Message);
        using var single = ragged.WithFormat("torch", ["input_ids"]).GetBatch([1])["input_ids"];
        Assert.Equal([1L, 1L], single.shape);
    }
}
