using System.Collections;
using Peft.Datasets;
using Peft.Testing;
using Peft.Transformers.Data;

namespace Peft.Transformers.Tests.Data;

[Collection(LeakTestCollection.Name)]
public class TorchFormattedDatasetLeakTests
{
    [Fact]
    public void BatchesAndRowsLeaveNoTensorsBehindOnceDisposed()
    {
        var ds = Dataset.FromDict(new Dictionary<string, IList>
        {
            ["label"] = Enumerable.Range(0, 8).Select(i => (long)(i % 2)).ToList(),
            ["input_ids"] = Enumerable.Range(0, 8).Select(i => new[] { i, i + 1 }).ToList(),
        });
        var fmt = ds.WithFormat("torch");
        LeakCheck.AssertNoGrowth(() =>
        {
            foreach (var batch in fmt.Batches(3))
                foreach (var t in batch.Values) t.Dispose();
            foreach (var t in fmt[5].Values) t.Dispose();
        }, iterations: 20, what: "TorchFormattedDataset");
    }
}
