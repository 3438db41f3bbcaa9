using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Modeling;

/// <summary>
/// The static mode of <see cref="KeyValueCache"/> (CUDA-graph decoding): the prompt is cached as in the dynamic mode,
/// decode steps write at a device slot and get the same full, zero-initialised buffers back every step, the capacity
/// is enforced, and a reset keeps the buffers for the next prompt.
/// </summary>
public class StaticKeyValueCacheTests
{
    private static bool Same(Tensor expected, Tensor actual) =>
        expected.shape.SequenceEqual(actual.shape) && expected.allclose(actual, rtol: 0, atol: 0);

    [Fact]
    public void Prompt_then_slot_writes_fill_fixed_full_buffers()
    {
        using var scope = NewDisposeScope();
        using var no = no_grad();
        manual_seed(5);
        using var cache = KeyValueCache.CreateStatic(8);
        var promptK = randn(2, 3, 4, 5);                                                  // [B, H_kv, T, D]
        var promptV = randn(2, 3, 4, 5);
        var (k0, v0) = cache.Update(0, promptK, promptV);
        Assert.True(Same(promptK, k0) && Same(promptV, v0), "the prompt step returns the filled part, as the dynamic cache");
        var slot = tensor(new long[] { 4 });
        var mask = zeros(2, 1, 1, 8);
        cache.BeginStaticDecode(slot, mask);
        Assert.Same(mask, cache.StaticDecodeMask);
        Tensor? firstKey = null;
        var expectedK = cat([promptK, zeros(2, 3, 4, 5)], 2);                            // [B, H_kv, C, D]: unwritten columns are zeros
        for (int step = 0; step < 4; step++)
        {
            var k = randn(2, 3, 1, 5);
            var v = randn(2, 3, 1, 5);
            var (kf, vf) = cache.Update(0, k, v);
            firstKey ??= kf;
            Assert.Same(firstKey, kf);                                                     // the same tensor every step (a graph replays it)
            Assert.Equal(new long[] { 2, 3, 8, 5 }, kf.shape);
            expectedK[.., .., 4 + step] = k.squeeze(2);
            Assert.True(Same(expectedK, kf), $"step {step}: keys written at the slot");
            Assert.True(Same(v.squeeze(2), vf[.., .., 4 + step]), $"step {step}: values written at the slot");
            slot.add_(1);
        }
        var tooLong = Assert.Throws<InvalidOperationException>(() => cache.Update(0, randn(2, 3, 2, 5), randn(2, 3, 2, 5)));
        Assert.Contains("one position", tooLong.Message);
        Assert.Throws<NotSupportedException>(() => cache.ReorderCache(tensor(new long[] { 1, 0 })));
    }

    [Fact]
    public void Reset_keeps_the_buffers_and_the_capacity_is_enforced()
    {
        using var scope = NewDisposeScope();
        using var no = no_grad();
        using var cache = KeyValueCache.CreateStatic(6);
        cache.Update(0, ones(1, 2, 3, 4), ones(1, 2, 3, 4));
        cache.BeginStaticDecode(tensor(new long[] { 3 }), zeros(1, 1, 1, 6));
        cache.Update(0, ones(1, 2, 1, 4), ones(1, 2, 1, 4));
        cache.ResetStatic();
        Assert.Null(cache.StaticDecodeMask);
        Assert.Equal(0, cache.GetSeqLength(0));
        var prompt = full(1, 2, 5, 4, 2.0f);
        var (k, _) = cache.Update(0, prompt, prompt);
        Assert.True(Same(prompt, k), "the next prompt is cached as a fresh one");
        var e = Assert.Throws<InvalidOperationException>(() => cache.Update(0, ones(1, 2, 2, 4), ones(1, 2, 2, 4)));
        Assert.Contains("capacity 6", e.Message);
    }
}
