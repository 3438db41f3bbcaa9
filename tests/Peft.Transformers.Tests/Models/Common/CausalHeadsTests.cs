using Peft.Core;
using Peft.Testing;
using Peft.Transformers.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Models.Common;

/// <summary>
/// <see cref="CausalHeads.HeadInput"/> puts the gradient release node on the LM head's input only when a loss will be
/// back-propagated through it (labels, grad enabled, hidden states requiring grad); otherwise the hidden states pass
/// unchanged (generation, evaluation, frozen backbones).
/// </summary>
public sealed class CausalHeadsTests
{
    [Fact]
    public void HeadInputAddsTheReleaseNodeOnlyForABackpropagatedLoss()
    {
        using var scope = NewDisposeScope();
        var hidden = randn(2, 5, 4, generator: new Generator(5)).requires_grad_(true);   // [B, T, H]
        var labels = zeros(2, 5, dtype: ScalarType.Int64);
        var (h, handoff) = CausalHeads.HeadInput(hidden, new ModelInput { InputIds = labels, Labels = labels });
        Assert.NotNull(handoff);
        Assert.NotSame(hidden, h);
        Assert.True(h.requires_grad);
        TensorAssert.Close(hidden, h, 0, what: "identity forward");

        var (h2, none) = CausalHeads.HeadInput(hidden, new ModelInput { InputIds = labels });
        Assert.Null(none);
        Assert.Same(hidden, h2);
        using (no_grad())
            Assert.Null(CausalHeads.HeadInput(hidden, new ModelInput { InputIds = labels, Labels = labels }).Handoff);
        Assert.Null(CausalHeads.HeadInput(hidden.detach(), new ModelInput { InputIds = labels, Labels = labels }).Handoff);
    }
}
