using Peft.Core;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Models;

/// <summary>
/// The fast paths of the causal decoders: SDPA's is_causal kernel path when no mask tensor is needed (no mask or an
/// all-ones mask, no cache prefix) and <see cref="ModelInput.LogitsToKeep"/>. Both must give what the explicit paths give.
/// </summary>
public class CausalAttentionPathTests
{
    [Theory]
    [MemberData(nameof(Names))]
    public void IsCausalPathEqualsTheExplicitMaskPath(string name)
    {
        using var model = DecoderModels.Load(name);
        model.eval();
        using var scope = NewDisposeScope();
        var ids = DecoderModels.RandomIds(model, 2, 7);
        using var _ = no_grad();
        var causal = model.forward(new ModelInput { InputIds = ids }).Logits!;                                // is_causal path
        var allOnes = model.forward(new ModelInput { InputIds = ids, AttentionMask = ones_like(ids) }).Logits!;
        // the explicit additive mask path: one padded row forces a mask tensor; the unpadded row 0 must not change
        var mask = ones_like(ids);
        mask[1, 0] = tensor(0L);
        var explicitMask = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask }).Logits!;
        TensorAssert.Close(causal, allOnes, 0, what: $"{name}: all-ones mask vs none");
        TensorAssert.Close(explicitMask[0], causal[0], 1e-5, what: $"{name}: explicit mask vs is_causal");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void LogitsToKeepReturnsTheLastPositionsLogits(string name)
    {
        using var model = DecoderModels.Load(name);
        model.eval();
        using var scope = NewDisposeScope();
        var ids = DecoderModels.RandomIds(model, 2, 6);
        using var _ = no_grad();
        var all = model.forward(new ModelInput { InputIds = ids }).Logits!;                 // [2, 6, V]
        var last = model.forward(new ModelInput { InputIds = ids, LogitsToKeep = 1 }).Logits!;
        var three = model.forward(new ModelInput { InputIds = ids, LogitsToKeep = 3 }).Logits!;
        Assert.Equal([2, 1, all.shape[2]], last.shape);
        // the head's GEMM has fewer rows, so MKL may block it differently: equal to fp32 rounding, not bits
        TensorAssert.Close(all.narrow(1, 5, 1), last, 1e-5, what: $"{name}: logits_to_keep 1");
        TensorAssert.Close(all.narrow(1, 3, 3), three, 1e-5, what: $"{name}: logits_to_keep 3");
        var e = Assert.Throws<ArgumentException>(() => model.forward(new ModelInput { InputIds = ids, Labels = ids, LogitsToKeep = 1 }));
        Assert.Contains("LogitsToKeep", e.Message);
    }

    /// <summary>
    /// A grouped-query decode step (one query, Hkv &lt; H) reads the cache in place: the query heads of each KV head
    /// become query rows. Equal to expanding the keys and values to H heads (the form it replaces), with and without
    /// an additive mask [B, 1, 1, S].
    /// </summary>
    [Fact]
    public void GroupedQueryDecodeStepEqualsExpandedKeysAndValues()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        long b = 2, h = 8, hkv = 2, s = 7, d = 16;
        var q = randn(b, 1, h, d).transpose(1, 2);                               // [B, H, 1, D] as the attention makes it
        var k = randn(b, hkv, s, d);
        var v = randn(b, hkv, s, d);
        var mask = zeros(b, 1, 1, s);
        mask[1, .., .., ..2] = tensor(float.MinValue);                           // row 1: two padded keys
        foreach (var m in new Tensor?[] { null, mask })
        {
            var grouped = Peft.Transformers.Models.ModelOps.Attend(q, k, v, m, 0.0, causal: true);          // [B, 1, H·D]
            var ke = k.unsqueeze(2).expand(b, hkv, h / hkv, s, d).reshape(b, h, s, d);
            var ve = v.unsqueeze(2).expand(b, hkv, h / hkv, s, d).reshape(b, h, s, d);
            var expanded = nn.functional.scaled_dot_product_attention(q, ke, ve, m).transpose(1, 2).reshape(b, 1, h * d);
            Assert.Equal(expanded.shape, grouped.shape);
            TensorAssert.Close(expanded, grouped, 1e-6, what: m is null ? "no mask" : "additive mask");
        }
    }

    public static TheoryData<string> Names => DecoderModels.Theory;
}
