using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Modeling;

/// <summary>
/// The cache's no-grad path (a growing buffer, one copy of the new positions per step) holds exactly what
/// DynamicCache's concatenation holds, through growth, beam reordering and cropping, and leaks no tensors.
/// </summary>
public class KeyValueCacheTests
{
    private static bool Same(Tensor expected, Tensor actual) =>
        expected.shape.SequenceEqual(actual.shape) && expected.allclose(actual, rtol: 0, atol: 0);

    [Fact]
    public void NoGradAppendsEqualConcatenation()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var cache = new KeyValueCache();
        var expectedK = randn(2, 5, 3, 4).transpose(1, 2);                                // [B, H_kv, T, D] prompt, strided as a projection's view
        var expectedV = randn(2, 3, 5, 4);
        using (no_grad()) cache.Update(1, expectedK, expectedV);
        for (int step = 0; step < 12; step++)
        {
            var k = randn(2, 3, 1, 4);
            var v = randn(2, 3, 1, 4);
            (Tensor K, Tensor V) got;
            using (no_grad()) got = cache.Update(1, k, v);
            expectedK = cat([expectedK, k], 2);
            expectedV = cat([expectedV, v], 2);
            Assert.True(Same(expectedK, got.K) && Same(expectedV, got.V), $"step {step}: cached keys/values differ from the concatenation");
            Assert.Equal(6 + step, cache.GetSeqLength(1));
            Assert.True(Same(expectedK, cache[1]!.Value.Key), $"step {step}: indexer");
        }
        var idx = tensor(new long[] { 1, 0 });
        cache.ReorderCache(idx);
        expectedK = expectedK.index_select(0, idx);
        using (no_grad()) Assert.True(Same(cat([expectedK, ones(2, 3, 1, 4)], 2), cache.Update(1, ones(2, 3, 1, 4), ones(2, 3, 1, 4)).Key));
        cache.Crop(4);
        Assert.Equal(4, cache.GetSeqLength(1));
        Assert.True(Same(expectedK.narrow(2, 0, 4), cache[1]!.Value.Key));
    }

    [Fact]
    public void WithAutogradTheCacheConcatenatesSoGradientsFlowToThePrefix()
    {
        using var scope = NewDisposeScope();
        var prefix = randn(1, 2, 3, 4).requires_grad_(true);
        using var cache = new KeyValueCache();
        cache.Update(0, prefix, prefix * 2);
        var (k, _) = cache.Update(0, ones(1, 2, 1, 4), ones(1, 2, 1, 4));
        k.sum().backward();
        Assert.True(Same(ones_like(prefix), prefix.grad!));
    }

    [Fact]
    public void GrowingAndDisposingLeaksNoTensors()
    {
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = NewDisposeScope();
            using var cache = new KeyValueCache();
            using var _ = no_grad();
            cache.Update(0, zeros(1, 2, 3, 4), zeros(1, 2, 3, 4));
            for (int i = 0; i < 9; i++) cache.Update(0, ones(1, 2, 1, 4), ones(1, 2, 1, 4));
        }, iterations: 5, what: "KeyValueCache growth");
    }
}
