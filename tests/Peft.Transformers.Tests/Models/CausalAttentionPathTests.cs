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

    public static TheoryData<string> Names => DecoderModels.Theory;
}
