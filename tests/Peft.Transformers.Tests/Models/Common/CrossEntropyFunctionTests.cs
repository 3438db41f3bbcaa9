using Peft.Testing;
using Peft.Transformers.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Models.Common;

/// <summary>
/// <see cref="CrossEntropyFunction"/> (and the two losses built on it) against torch's own
/// <c>cross_entropy(x.float(), y, ignore_index=-100)</c> under autograd: loss and gradient within float32 rounding,
/// for several shapes, seeds, ignore patterns, upstream gradients and input dtypes.
/// </summary>
public sealed class CrossEntropyFunctionTests
{
    // Float32 rounding of a mean of ~N terms of size log(C) ≈ 10 (|loss| ≤ 30 here): relative 1e-6 with margin.
    private const double LossTol = 2e-5;
    // Gradient entries are p · g / n: torch takes p = exp(log_softmax(x)), whose float32 exponent is off by up to an ulp
    // of |log p| (≤ 2e-6 for |log p| < 32), this node softmax(x); p differs by that relative amount. Compared as an
    // absolute bound scaled by the largest entry (≈ |g| / n).
    private const double GradRel = 4e-6;

    public static TheoryData<int, int, int, double> Sizes => new()
    {
        // rows, classes, seed, share of rows labelled −100
        { 1, 2, 1, 0.0 },
        { 7, 5, 2, 0.3 },
        { 64, 50, 3, 0.5 },
        { 33, 1000, 4, 0.1 },
        { 128, 4099, 5, 0.9 },
        { 5, 30000, 6, 0.0 },
        { 33, 300_000, 7, 0.2 },
    };

    [Theory]
    [MemberData(nameof(Sizes))]
    public void LossAndGradientMatchTorchCrossEntropy(int n, int c, int seed, double ignoredShare)
    {
        using var scope = NewDisposeScope();
        var (x, y) = RandomProblem(n, c, seed, ignoredShare);
        foreach (double g in new[] { 1.0, 2.5, -0.7 })
        {
            var (refLoss, refGrad) = Reference(x, y, g);
            var (loss, grad) = Fused(x, y, g);
            Assert.Equal(ScalarType.Float32, loss.dtype);
            Assert.Empty(loss.shape);
            TensorAssert.Close(refLoss, loss, LossTol, what: $"loss n={n} c={c} g={g}");
            TensorAssert.Close(refGrad, grad, GradTolOf(refGrad), what: $"grad n={n} c={c} g={g}");
        }
    }

    /// <summary>
    /// On the CPU the forward's log-softmax runs in blocks of rows (about 8 MiB each) instead of over all rows: the loss
    /// and gradient are the same bits for any block size, since torch's CPU log-softmax works row by row. Block sizes
    /// of one row, a few rows (the last block short) and all rows; float32 and bfloat16 logits.
    /// </summary>
    [Theory]
    [InlineData(37, 1000, 61, ScalarType.Float32)]
    [InlineData(50, 4099, 62, ScalarType.BFloat16)]
    public void RowBlocksGiveTheSameBitsAsOneBlock(int n, int c, int seed, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var (x32, y) = RandomProblem(n, c, seed, 0.2);
        var x = x32.to_type(dtype);
        var (whole, wholeGrad) = WithBlockBytes(long.MaxValue, () => Fused(x, y, 1.5));
        foreach (long bytes in new[] { 1L, 7L * c * sizeof(float), (n - 1L) * c * sizeof(float) })
        {
            var (loss, grad) = WithBlockBytes(bytes, () => Fused(x, y, 1.5));
            TensorAssert.Close(whole, loss, 0, what: $"loss, blocks of {bytes} bytes");
            TensorAssert.Close(wholeGrad, grad, 0, what: $"gradient, blocks of {bytes} bytes");
        }
    }

    private static T WithBlockBytes<T>(long bytes, Func<T> run)
    {
        CrossEntropyFunction.CpuBlockBytesOverride = bytes;
        try { return run(); }
        finally { CrossEntropyFunction.CpuBlockBytesOverride = 0; }
    }

    [Fact]
    public void IgnoredRowsGetZeroGradient()
    {
        using var scope = NewDisposeScope();
        var (x, y) = RandomProblem(40, 17, 11, 0.5);
        var (_, grad) = Fused(x, y, 1.0);
        var ignored = y.eq(CrossEntropyFunction.IgnoreIndex);
        Assert.True(ignored.any().item<bool>(), "the problem has ignored rows");
        Assert.Equal(0.0, grad[ignored].abs().sum().item<float>());
        Assert.True(grad[ignored.logical_not()].abs().sum().item<float>() > 0, "valid rows get a gradient");
    }

    [Fact]
    public void AllLabelsIgnoredGivesTorchsNanLossAndZeroGradient()
    {
        using var scope = NewDisposeScope();
        var x = randn(6, 9, generator: new Generator(7));
        var y = full(6, CrossEntropyFunction.IgnoreIndex, ScalarType.Int64);
        var (refLoss, refGrad) = Reference(x, y, 1.0);
        var (loss, grad) = Fused(x, y, 1.0);
        Assert.True(float.IsNaN(refLoss.item<float>()), "torch returns NaN for a mean over no labels");
        Assert.True(float.IsNaN(loss.item<float>()), "NaN as torch");
        TensorAssert.Close(refGrad, grad, 0, what: "all-ignored gradient");
        Assert.Equal(0.0, grad.abs().sum().item<float>());
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, 1e-2)]   // one bfloat16 ulp of a gradient entry ≤ 1 / n (both sides cast the float32 gradient)
    [InlineData(ScalarType.Float16, 1e-3)]
    [InlineData(ScalarType.Float64, GradRel)] // .float() downcasts, the float32 gradient is cast back
    public void LowAndHighPrecisionLogitsAreUpcastAsHfDoes(ScalarType dtype, double gradTol)
    {
        using var scope = NewDisposeScope();
        var (x32, y) = RandomProblem(24, 300, 21, 0.25);
        var x = x32.to_type(dtype);
        var (refLoss, refGrad) = Reference(x, y, 1.0);
        var (loss, grad) = Fused(x, y, 1.0);
        Assert.Equal(ScalarType.Float32, loss.dtype);
        Assert.Equal(dtype, grad.dtype);
        TensorAssert.Close(refLoss, loss, LossTol, what: $"{dtype} loss");
        // the relative error of a low-precision entry is bounded by its ulp: compare scaled by the largest entry
        TensorAssert.Close(refGrad, grad, gradTol * refGrad.abs().max().to_type(ScalarType.Float64).item<double>(), what: $"{dtype} grad");
    }

    [Theory]
    [InlineData(1, 2, 8, 31)]
    [InlineData(2, 9, 50, 32)]
    [InlineData(3, 16, 513, 33)]
    public void CausalLmLossEqualsHfShiftAndCrossEntropy(int b, int t, int v, int seed)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator((ulong)seed);
        var logits = (randn(b, t, v, generator: gen) * 3).requires_grad_(true);
        var labels = randint(0, v, [b, t], generator: gen);
        labels = labels.masked_fill(rand(b, t, generator: gen).lt(0.2), CrossEntropyFunction.IgnoreIndex);
        // HF ForCausalLMLoss: pad labels with −100 on the right, shift left by one, cross_entropy(logits.float()) over all positions
        var shifted = nn.functional.pad(labels, [0, 1], value: -100).narrow(1, 1, t);
        var reference = nn.functional.cross_entropy(logits.to_type(ScalarType.Float32).reshape(-1, v), shifted.reshape(-1), ignore_index: -100);
        var refGrad = autograd.grad([reference], [logits])[0];
        var loss = ModelOps.CausalLmLoss(logits, labels);
        var grad = autograd.grad([loss], [logits])[0];
        TensorAssert.Close(reference, loss, LossTol, what: "causal LM loss");
        TensorAssert.Close(refGrad, grad, GradTolOf(refGrad), what: "causal LM gradient");
        Assert.Equal(0.0, grad.select(1, t - 1).abs().sum().item<float>()); // the last position has no next label
    }

    [Fact]
    public void TokenLossEqualsCrossEntropyOverFlattenedTokens()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(41);
        var logits = randn(3, 7, 5, generator: gen).requires_grad_(true);
        var labels = randint(0, 5, [3, 7], generator: gen).masked_fill(rand(3, 7, generator: gen).lt(0.3), CrossEntropyFunction.IgnoreIndex);
        var reference = nn.functional.cross_entropy(logits.reshape(-1, 5), labels.reshape(-1), ignore_index: -100);
        var refGrad = autograd.grad([reference], [logits])[0];
        var loss = ModelOps.TokenLoss(logits, labels);
        var grad = autograd.grad([loss], [logits])[0];
        TensorAssert.Close(reference, loss, LossTol, what: "token loss");
        TensorAssert.Close(refGrad, grad, GradTolOf(refGrad), what: "token gradient");
    }

    [Fact]
    public void ForwardWithoutGradientReturnsTheLossOnly()
    {
        using var scope = NewDisposeScope();
        var (x, y) = RandomProblem(10, 12, 51, 0.2);
        using var _ = no_grad();
        var loss = CrossEntropyFunction.Apply(x, y);
        var reference = nn.functional.cross_entropy(x, y, ignore_index: -100);
        Assert.False(loss.requires_grad);
        TensorAssert.Close(reference, loss, LossTol, what: "no-grad loss");
    }

    [Fact]
    public void BadShapesAndLabelTypesFailFast()
    {
        using var scope = NewDisposeScope();
        var x = randn(4, 3);
        var e1 = Assert.Throws<ArgumentException>(() => CrossEntropyFunction.Apply(x, zeros(4, dtype: ScalarType.Int32)));
        Assert.Contains("Int32", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => CrossEntropyFunction.Apply(x, zeros(5, dtype: ScalarType.Int64)));
        Assert.Contains("[5]", e2.Message);
        Assert.Throws<ArgumentException>(() => CrossEntropyFunction.Apply(x.reshape(2, 2, 3), zeros(2, dtype: ScalarType.Int64)));
    }

    /// <summary>
    /// The node releases its saved logits after backward (as torch's nodes do): the storage-sharing tensor it saved
    /// no longer holds them, so a second backward through the same loss is refused by autograd with an exception at
    /// the <c>backward()</c> call (torch without retain_graph=True refuses it too), and the first gradient stays right.
    /// </summary>
    [Fact]
    public void SecondBackwardThroughTheSameLossIsRefused()
    {
        using var scope = NewDisposeScope();
        var (x, y) = RandomProblem(12, 9, 71, 0.2);
        var leaf = x.detach().clone().requires_grad_(true);
        var loss = CrossEntropyFunction.Apply(leaf, y);
        loss.backward(retain_graph: true);
        var (_, refGrad) = Reference(x, y, 1.0);
        TensorAssert.Close(refGrad, leaf.grad!, GradTolOf(refGrad), what: "first backward");
        var e = Assert.ThrowsAny<Exception>(() => loss.backward(retain_graph: true));
        Assert.Contains("invalid gradient at index 0", e.Message);
    }

    /// <summary>
    /// With a <see cref="GradientHandoff"/> the node hands its [N, C] gradient's handle over; a
    /// <see cref="GradientReleaseFunction"/> on the input of the module that consumes it (here a linear head) disposes
    /// it in its own backward. Gradients equal those of the plain graph bit for bit, with or without the release node.
    /// </summary>
    [Fact]
    public void HandoffReleasesTheGradientAfterTheConsumingHeadsBackward()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(81);
        var h = randn(10, 6, generator: gen);
        var w = randn(23, 6, generator: gen);
        var y = randint(0, 23, [10], generator: gen);
        (Tensor Dh, Tensor Dw) Run(GradientHandoff? handoff, bool release)
        {
            var hl = h.detach().clone().requires_grad_(true);
            var wl = w.detach().clone().requires_grad_(true);
            var input = release ? GradientReleaseFunction.Apply(hl, handoff!) : hl;
            var logits = nn.functional.linear(input, wl);                                  // [N, C]
            CrossEntropyFunction.Apply(logits, y, handoff).backward();
            return (hl.grad!, wl.grad!);
        }
        var (dh0, dw0) = Run(null, release: false);
        var held = new GradientHandoff();
        var (dh1, dw1) = Run(held, release: false);
        Assert.Equal(1, held.Count);                                                        // handed over, nothing released it
        var released = new GradientHandoff();
        var (dh2, dw2) = Run(released, release: true);
        Assert.Equal(0, released.Count);                                                    // released by the head input's node
        foreach (var (a, b, what) in new[] { (dh0, dh1, "dh held"), (dw0, dw1, "dw held"), (dh0, dh2, "dh released"), (dw0, dw2, "dw released") })
            TensorAssert.Close(a, b, 0, what: what);
        held.Dispose();
    }

    private static double GradTolOf(Tensor refGrad) => GradRel * refGrad.abs().max().to_type(ScalarType.Float64).item<double>();

    private static (Tensor X, Tensor Y) RandomProblem(int n, int c, int seed, double ignoredShare)
    {
        var gen = new Generator((ulong)seed);
        var x = randn(n, c, generator: gen) * 3;                                   // [N, C] float32, a spread like trained logits
        var y = randint(0, c, [n], generator: gen);                                // [N] int64
        return (x, y.masked_fill(rand(n, generator: gen).lt(ignoredShare), CrossEntropyFunction.IgnoreIndex));
    }

    /// <summary>torch's composite under autograd: HF's <c>cross_entropy(logits.float(), labels, ignore_index=-100)</c>, backward with upstream g.</summary>
    private static (Tensor Loss, Tensor Grad) Reference(Tensor x, Tensor y, double g)
    {
        var leaf = x.detach().clone().requires_grad_(true);
        var loss = nn.functional.cross_entropy(leaf.to_type(ScalarType.Float32), y, ignore_index: -100);
        var grad = autograd.grad([loss], [leaf], [full_like(loss, g)])[0];
        return (loss.detach(), grad);
    }

    private static (Tensor Loss, Tensor Grad) Fused(Tensor x, Tensor y, double g)
    {
        var leaf = x.detach().clone().requires_grad_(true);
        var loss = CrossEntropyFunction.Apply(leaf, y);
        var grad = autograd.grad([loss], [leaf], [full_like(loss, g)])[0];
        return (loss.detach(), grad);
    }
}

/// <summary>
/// Forward and backward of <see cref="CrossEntropyFunction"/> in one dispose scope (the model forward's / training
/// step's, as everywhere in the library) release every tensor they make, the saved ones included.
/// </summary>
[Collection(LeakTestCollection.Name)]
public sealed class CrossEntropyFunctionLeakTests
{
    [Fact]
    public void ForwardAndBackwardDoNotLeakTensors()
    {
        var gen = new Generator(61);
        using var x = randn(16, 40, generator: gen);
        using var y = randint(0, 40, [16], generator: gen);
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = NewDisposeScope();
            var leaf = x.detach().requires_grad_(true);
            CrossEntropyFunction.Apply(leaf, y).backward();
            Assert.NotNull(leaf.grad);
        }, 100, what: "cross-entropy forward + backward in a scope");
    }

    [Fact]
    public void HandoffAndReleaseNodeDoNotLeakTensors()
    {
        var gen = new Generator(62);
        using var h = randn(16, 8, generator: gen);
        using var w = randn(40, 8, generator: gen);
        using var y = randint(0, 40, [16], generator: gen);
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = NewDisposeScope();
            var hl = h.detach().requires_grad_(true);
            var handoff = new GradientHandoff();
            var logits = nn.functional.linear(GradientReleaseFunction.Apply(hl, handoff), w);
            CrossEntropyFunction.Apply(logits, y, handoff).backward();
            Assert.Equal(0, handoff.Count);
            Assert.NotNull(hl.grad);
        }, 100, what: "cross-entropy with a gradient handoff, forward + backward in a scope");
    }
}
