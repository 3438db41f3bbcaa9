using Peft.Core.Safetensors;
using Peft.Testing;
using TorchSharp;

namespace Peft.Core.Tests.Safetensors;

[Collection(LeakTestCollection.Name)]
public class SafetensorsLeakTests
{
    [Fact]
    public void ReadingTensorsInAScopeLeavesNoLiveTensors()
    {
        using var f = SafetensorsFile.Open(Fixtures.Reference("gpt2-tiny"));
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = torch.NewDisposeScope();
            foreach (var info in f.Tensors)
            {
                using var t = f.GetTensor(info.Name, torch.ScalarType.Float64);
                _ = t.sum();
            }
        }, iterations: 100, what: "SafetensorsFile.GetTensor");
    }

    [Fact]
    public void LeakCheckDetectsALeak()
    {
        // The helper must be able to fail: a tensor kept alive per iteration is reported.
        var kept = new List<torch.Tensor>();
        var e = Assert.ThrowsAny<Xunit.Sdk.XunitException>(() =>
            LeakCheck.AssertNoGrowth(() => kept.Add(torch.ones(1)), iterations: 10));
        Assert.Contains("10 live tensors leaked", e.Message);
        foreach (var t in kept) t.Dispose();
    }
}
