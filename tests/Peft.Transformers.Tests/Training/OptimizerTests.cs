using Peft.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using AdamW = Peft.Transformers.Optimization.AdamW;
using ParamGroup = Peft.Transformers.Optimization.ParamGroup;

namespace Peft.Transformers.Tests.Training;

/// <summary>
/// AdamW / SGD / clipping / the no-decay rule against TorchSharp's ports of torch's optimizers and utilities. (The
/// bit-level parity with torch 2.11 is proven by the trajectory fixtures; TorchSharp's AdamW updates exp_avg with
/// mul_/add_ where torch 2.x uses lerp_, so the two agree to rounding, not bits.)
/// </summary>
public class OptimizerTests
{
    private static (Parameter Mine, Parameter Theirs) Pair(long seed, params long[] shape)
    {
        using var g = new Generator((ulong)seed);
        var w = randn(shape, generator: g);
        return (new Parameter(w.clone()), new Parameter(w.clone()));
    }

    private static void SetGrad(Parameter p, Tensor g) => p.grad = g.clone();

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.01)]
    public void AdamWMatchesTorchSharpAdamW(double weightDecay)
    {
        var (mine, theirs) = Pair(3, 5, 7);
        using var opt = new AdamW([new ParamGroup(["w"], [mine], weightDecay)], 0.9, 0.999, 1e-8);
        var reference = torch.optim.AdamW([theirs], lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: weightDecay);
        for (int step = 0; step < 6; step++)
        {
            var g = randn(5, 7);
            SetGrad(mine, g);
            SetGrad(theirs, g);
            opt.SetLr(1e-2);
            opt.Step();
            reference.step();
            TensorAssert.Close(theirs, mine, 1e-6, what: $"AdamW step {step}");
        }
    }

    /// <summary>
    /// torch 2.11 <c>_single_tensor_adam</c> (decoupled decay) written out op for op on whole tensors: the reference
    /// AdamW must equal bit for bit, over two groups (with and without decay), large and small tensors. (A variant
    /// updating large tensors in 2^16- and 2^20-element slices also passed this test but ran 2–6× slower on the shared
    /// 2-core machine, every op an OpenMP barrier; see bench/README.md.)
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AdamWIsBitIdenticalToTorchsPerTensorLoop(bool multiTensor)
    {
        long[][] shapes = [[2_300_007], [517, 389], [5], [1 << 20]];
        manual_seed(11);
        var mine = shapes.Select(s => new Parameter(randn(s))).ToArray();
        var refP = mine.Select(p => p.detach().clone()).ToArray();
        var refM = shapes.Select(s => zeros(s)).ToArray();
        var refV = shapes.Select(s => zeros(s)).ToArray();
        var groups = new[] { new ParamGroup(["a", "b"], [mine[0], mine[1]], 0.01), new ParamGroup(["c", "d"], [mine[2], mine[3]], 0.0) };
        using var opt = new AdamW(groups, @foreach: multiTensor);
        double lr = 2e-4, b1 = 0.9, b2 = 0.999, eps = 1e-8;
        for (int step = 1; step <= 4; step++)
        {
            opt.SetLr(lr);
            var grads = shapes.Select(s => randn(s) * 1e-2).ToArray();
            for (int i = 0; i < mine.Length; i++) SetGrad(mine[i], grads[i]);
            opt.Step();
            using (no_grad())
                for (int i = 0; i < mine.Length; i++)
                {
                    double wd = i < 2 ? 0.01 : 0.0;
                    if (wd != 0) refP[i].mul_(1 - lr * wd);
                    refM[i].lerp_(grads[i], tensor(1 - b1));
                    refV[i].mul_(b2).addcmul_(grads[i], grads[i], 1 - b2);
                    double bc1 = 1 - Math.Pow(b1, step), bc2 = 1 - Math.Pow(b2, step);
                    var denom = refV[i].sqrt().div_(Math.Sqrt(bc2)).add_(eps);
                    refP[i].addcdiv_(refM[i], denom, -(lr / bc1));
                }
            for (int i = 0; i < mine.Length; i++) AssertSameBits(refP[i], mine[i], $"param {i} after step {step}");
        }
    }

    // A generator of the test's own: two calls with one seed give the same values even while tests on other threads
    // draw from torch's process-wide generator (a draw in between once made CI's two "equal" sets differ).
    private static Parameter[] Params(long seed, long[][] shapes)
    {
        using var g = new Generator((ulong)seed);
        return shapes.Select(s => new Parameter(randn(s, generator: g))).ToArray();
    }

    private static readonly long[][] MixedShapes = [[37, 11], [7], [1], [300, 17], [5, 3, 2], [64]];

    /// <summary>
    /// The multi-tensor form (flat buffers per group) against the per-parameter form over two weight-decay groups, odd
    /// shapes, a step where one parameter has no gradient (that bucket falls back to the per-parameter loop and its
    /// step counts differ from then on) and a parameter without gradients throughout (its group never goes flat):
    /// parameters and every state tensor equal bit for bit, and the flat group's parameters are views of one buffer.
    /// </summary>
    [Fact]
    public void MultiTensorAdamWEqualsThePerParameterFormBitForBit()
    {
        var flat = Params(21, MixedShapes);
        var loop = Params(21, MixedShapes);
        ParamGroup[] Groups(Parameter[] p) => [new(["a", "b", "c"], [p[0], p[1], p[2]], 0.01), new(["d", "e", "f"], [p[3], p[4], p[5]], 0.0)];
        using var a = new AdamW(Groups(flat), @foreach: true);
        using var b = new AdamW(Groups(loop), @foreach: false);
        for (int step = 1; step <= 5; step++)
        {
            for (int i = 0; i < flat.Length; i++)
            {
                bool skip = i == 5 || (step == 3 && i == 1);   // f frozen; b has no gradient in step 3
                var g = skip ? null : randn(MixedShapes[i]) * 1e-2;
                flat[i].grad = g?.clone();
                loop[i].grad = g?.clone();
            }
            a.SetLr(1e-3 * step); b.SetLr(1e-3 * step);
            a.Step(); b.Step();
            a.ZeroGrad(); b.ZeroGrad();
            for (int i = 0; i < flat.Length; i++) AssertSameBits(loop[i], flat[i], $"param {i} after step {step}");
        }
        AssertSameCheckpoint(b, a);
        // group 1 stepped on its flat buffer in steps 1-2: a, b, c are consecutive views of it (group 2 never did: f has no gradient)
        Assert.Equal(flat[0].numel(), flat[1].storage_offset() - flat[0].storage_offset());
        Assert.Equal(flat[0].numel() + flat[1].numel(), flat[2].storage_offset());
        Assert.Equal(0, flat[4].storage_offset());
    }

    /// <summary>
    /// The multi-tensor form split into buckets of at most a given size (CUDA's default: 128 MiB, so a step's gradient
    /// cat and the flat buffers stay blocks the caching allocator can place): parameters and state equal the one-bucket
    /// form and the per-parameter form bit for bit over 4 steps, the runs are consecutive (a parameter larger than the
    /// cap alone), each bucket's parameters are back-to-back views of its own buffer, and the checkpoint keys are the same.
    /// </summary>
    [Fact]
    public void MultiTensorBucketsSplitBySizeStepAsOneBucketBitForBit()
    {
        var split = Params(41, MixedShapes);
        var one = Params(41, MixedShapes);
        var loop = Params(41, MixedShapes);
        ParamGroup[] Groups(Parameter[] p) => [new(["a", "b", "c", "d", "e", "f"], p, 0.01)];
        // 4-byte floats: cap 1,700 bytes = 425 elements → [a (407), b (7), c (1)], [d (5,100: larger than the cap, alone)], [e (30), f (64)]
        using var a = new AdamW(Groups(split), 0.9, 0.999, 1e-8, @foreach: true, bucketCapBytes: 1700);
        using var b = new AdamW(Groups(one), 0.9, 0.999, 1e-8, @foreach: true, bucketCapBytes: 0);
        using var c = new AdamW(Groups(loop), @foreach: false);
        for (int step = 1; step <= 4; step++)
        {
            for (int i = 0; i < split.Length; i++)
            {
                var g = randn(MixedShapes[i]) * 1e-2;
                split[i].grad = g.clone(); one[i].grad = g.clone(); loop[i].grad = g.clone();
            }
            a.SetLr(1e-3 * step); b.SetLr(1e-3 * step); c.SetLr(1e-3 * step);
            a.Step(); b.Step(); c.Step();
            a.ZeroGrad(); b.ZeroGrad(); c.ZeroGrad();
            for (int i = 0; i < split.Length; i++)
            {
                AssertSameBits(one[i], split[i], $"param {i} after step {step} (one bucket)");
                AssertSameBits(loop[i], split[i], $"param {i} after step {step} (per parameter)");
                foreach (var name in new[] { "exp_avg", "exp_avg_sq", "step" })
                    AssertSameBits(b.StateTensor(i, name)!, a.StateTensor(i, name)!, $"{name} {i} after step {step}");
            }
        }
        // buckets: a, b, c back to back in one buffer; d alone at offset 0 of its own; e, f back to back in a third
        Assert.Equal(new long[] { 0, 407, 414 }, split.Take(3).Select(p => p.storage_offset()).ToArray());
        Assert.Equal(0, split[3].storage_offset());
        Assert.Equal(new long[] { 0, 30 }, split.Skip(4).Select(p => p.storage_offset()).ToArray());
        Assert.Equal(new long[] { 0, 407, 414, 415, 5515, 5545 }, one.Select(p => p.storage_offset()).ToArray());
        AssertSameCheckpoint(b, a);
    }

    // Both optimizers saved: the same keys in optimizer.safetensors, every tensor bit-equal.
    private static void AssertSameCheckpoint(AdamW expected, AdamW actual)
    {
        using var dirE = new TempDir();
        using var dirA = new TempDir();
        expected.Save(dirE.Path); actual.Save(dirA.Path);
        using var fe = Peft.Core.Safetensors.SafetensorsFile.Open(dirE.File("optimizer.safetensors"));
        using var fa = Peft.Core.Safetensors.SafetensorsFile.Open(dirA.File("optimizer.safetensors"));
        Assert.Equal(fe.Keys.Order(), fa.Keys.Order());
        foreach (var key in fe.Keys) AssertSameBits(fe.GetTensor(key), fa.GetTensor(key), key);
    }

    /// <summary>Saved by the multi-tensor form, loaded into both forms: the next steps equal each other and the uninterrupted run.</summary>
    [Fact]
    public void MultiTensorAdamWStateRoundTripsInTorchsPerParameterLayout()
    {
        using var dir = new TempDir();
        var run = Params(31, MixedShapes);
        var resumedFlat = Params(31, MixedShapes);
        var resumedLoop = Params(31, MixedShapes);
        ParamGroup[] Groups(Parameter[] p) => [new(["a", "b", "c", "d", "e", "f"], p, 0.01)];
        using var a = new AdamW(Groups(run), @foreach: true);
        using var b = new AdamW(Groups(resumedFlat), @foreach: true);
        using var c = new AdamW(Groups(resumedLoop), @foreach: false);
        var grads = Enumerable.Range(0, 3).Select(_ => MixedShapes.Select(s => randn(s)).ToArray()).ToArray();
        a.SetLr(0.01); b.SetLr(0.01); c.SetLr(0.01);
        for (int i = 0; i < run.Length; i++) run[i].grad = grads[0][i].clone();
        a.Step();
        // b and c run one step with other gradients first, so their flat buffers exist before Load replaces the state
        for (int i = 0; i < run.Length; i++) { resumedFlat[i].grad = grads[2][i].clone(); resumedLoop[i].grad = grads[2][i].clone(); }
        b.Step(); c.Step();
        a.Save(dir.Path);
        using (var f = Peft.Core.Safetensors.SafetensorsFile.Open(dir.File("optimizer.safetensors")))
            Assert.Equal(Enumerable.Range(0, 6).SelectMany(i => new[] { $"state.{i}.exp_avg", $"state.{i}.exp_avg_sq", $"state.{i}.step" }).Order(), f.Keys.Order());
        b.Load(dir.Path); c.Load(dir.Path);
        using (no_grad())
            for (int i = 0; i < run.Length; i++) { resumedFlat[i].copy_(run[i]); resumedLoop[i].copy_(run[i]); }
        for (int i = 0; i < run.Length; i++)
        {
            run[i].grad = grads[1][i].clone();
            resumedFlat[i].grad = grads[1][i].clone();
            resumedLoop[i].grad = grads[1][i].clone();
        }
        a.Step(); b.Step(); c.Step();
        for (int i = 0; i < run.Length; i++)
        {
            AssertSameBits(run[i], resumedFlat[i], $"param {i} resumed (multi-tensor)");
            AssertSameBits(run[i], resumedLoop[i], $"param {i} resumed (per parameter)");
        }
    }

    /// <summary>
    /// The per-parameter form (torch's CPU loop) keeps exp_avg / exp_avg_sq as consecutive views of one buffer per group:
    /// state is bound when a parameter first has a gradient (a parameter without one has none, as in torch, and is not
    /// saved), and state loaded from a checkpoint is copied back into the buffer on the next step.
    /// </summary>
    [Fact]
    public void PerParameterAdamWKeepsItsStateInOneBufferPerGroup()
    {
        using var dir = new TempDir();
        var p = Params(41, MixedShapes);
        ParamGroup[] Groups(Parameter[] ps) => [new(["a", "b", "c", "d", "e", "f"], ps, 0.01)];
        using var opt = new AdamW(Groups(p), @foreach: false);
        long[] offsets = MixedShapes.Select((_, i) => MixedShapes.Take(i).Sum(s => s.Aggregate(1L, (x, y) => x * y))).ToArray();
        void AssertLayout(string when)
        {
            for (int i = 0; i < p.Length; i++)
            {
                if (i == 2) { Assert.Null(opt.StateTensor(i, "exp_avg")); continue; }          // c never has a gradient
                foreach (var name in new[] { "exp_avg", "exp_avg_sq" })
                {
                    var t = opt.StateTensor(i, name)!;
                    Assert.True(t.is_contiguous(), $"{when}: {name} of {i} is contiguous");
                    Assert.Equal(offsets[i], t.storage_offset());
                    Assert.Equal(p[i].shape, t.shape);
                }
                Assert.Equal(i, opt.StateTensor(i, "step")!.storage_offset());
            }
        }
        for (int step = 1; step <= 2; step++)
        {
            for (int i = 0; i < p.Length; i++) p[i].grad = i == 2 ? null : randn(MixedShapes[i]);
            opt.SetLr(0.01);
            opt.Step();
            opt.ZeroGrad();
        }
        AssertLayout("after two steps");
        Assert.Equal(2f, opt.StateTensor(0, "step")!.item<float>());
        opt.Save(dir.Path);
        using (var f = Peft.Core.Safetensors.SafetensorsFile.Open(dir.File("optimizer.safetensors")))
            Assert.DoesNotContain(f.Keys, k => k.StartsWith("state.2.", StringComparison.Ordinal));
        var saved = Enumerable.Range(0, p.Length).Where(i => i != 2).Select(i => opt.StateTensor(i, "exp_avg_sq")!.clone()).ToArray();
        opt.Load(dir.Path);
        for (int i = 0; i < p.Length; i++) p[i].grad = i == 2 ? null : zeros(MixedShapes[i]);
        opt.Step();
        AssertLayout("after a step on loaded state");
        Assert.Equal(3f, opt.StateTensor(0, "step")!.item<float>());
        var now = Enumerable.Range(0, p.Length).Where(i => i != 2).Select(i => opt.StateTensor(i, "exp_avg_sq")!).ToArray();
        for (int k = 0; k < now.Length; k++) TensorAssert.Close(saved[k] * 0.999, now[k], 1e-7, what: $"exp_avg_sq {k} carried over the load");
    }

    private static void AssertSameBits(Tensor expected, Tensor actual, string what)
    {
        var e = expected.detach().contiguous().data<float>().ToArray();
        var a = actual.detach().contiguous().data<float>().ToArray();
        Assert.Equal(e.Length, a.Length);
        int diff = Enumerable.Range(0, e.Length).Count(i => BitConverter.SingleToInt32Bits(e[i]) != BitConverter.SingleToInt32Bits(a[i]));
        Assert.True(diff == 0, $"{what}: {diff} of {e.Length} elements differ in their bits");
    }

    [Fact]
    public void SgdMatchesTorchSharpSgd()
    {
        var (mine, theirs) = Pair(4, 3, 4);
        using var opt = new Sgd([new ParamGroup(["w"], [mine], 0.1)]);
        var reference = torch.optim.SGD([theirs], 0.05, weight_decay: 0.1);
        for (int step = 0; step < 3; step++)
        {
            var g = randn(3, 4);
            SetGrad(mine, g);
            SetGrad(theirs, g);
            opt.SetLr(0.05);
            opt.Step();
            reference.step();
            TensorAssert.Close(theirs, mine, 1e-7, what: $"SGD step {step}");
        }
    }

    /// <summary>
    /// A finite lr too large for the parameters' dtype (1e39 on float32) is refused with an ArgumentOutOfRangeException
    /// naming the learning rate before the parameter changes, not an untyped native overflow error from libtorch.
    /// </summary>
    [Theory]
    [InlineData("adamw")]
    [InlineData("sgd")]
    public void LearningRateBeyondTheParameterDtypeIsATypedErrorAndChangesNothing(string name)
    {
        var (p, _) = Pair(7, 3, 2);
        var before = p.detach().clone();
        SetGrad(p, ones(3, 2));
        var groups = new[] { new ParamGroup(["w"], [p], 0.01) };
        using TrainerOptimizer opt = name == "adamw" ? new AdamW(groups) : new Sgd(groups);
        opt.SetLr(1e39);
        var e = Assert.Throws<ArgumentOutOfRangeException>(opt.Step);
        Assert.Contains("learning_rate 1E+39 is too large", e.Message, StringComparison.Ordinal);
        Assert.Equal(before.data<float>().ToArray(), p.detach().data<float>().ToArray());   // unchanged: refused before the update
        opt.SetLr(1e30);
        opt.Step();                                    // large but representable: no error
    }

    [Fact]
    public void ClipGradNormMatchesTorchSharpAndReturnsThePreClipNorm()
    {
        var (a, a2) = Pair(5, 4, 4);
        var (b, b2) = Pair(6, 3);
        var ga = randn(4, 4) * 3;
        var gb = randn(3) * 3;
        SetGrad(a, ga); SetGrad(b, gb); SetGrad(a2, ga); SetGrad(b2, gb);
        double expected = Math.Sqrt(ga.pow(2).sum().item<float>() + gb.pow(2).sum().item<float>());
        double norm = GradClip.ClipGradNorm([a, b], 1.0);
        double theirs = torch.nn.utils.clip_grad_norm_([a2, b2], 1.0);
        Assert.Equal(expected, norm, 4);
        Assert.Equal(theirs, norm, 5);
        TensorAssert.Close(a2.grad!, a.grad!, 1e-7, what: "clipped grad a");
        TensorAssert.Close(b2.grad!, b.grad!, 1e-7, what: "clipped grad b");
        double after = GradClip.ClipGradNorm([a, b], 0);
        Assert.Equal(1.0, after, 4);
    }

    /// <summary>
    /// The flat (foreach) clipping path against the per-tensor one: same pre-clip norm and clipped gradients up to the
    /// summation order; the gradients become views of one buffer, and a second call reads that buffer without a copy.
    /// </summary>
    [Fact]
    public void ClipGradNormFlatPathEqualsThePerTensorPathAndLeavesOneBuffer()
    {
        var flat = Params(41, MixedShapes);
        var loop = Params(41, MixedShapes);
        for (int i = 0; i < flat.Length; i++)
        {
            var g = randn(MixedShapes[i]) * 2;
            flat[i].grad = g.clone();
            loop[i].grad = g.clone();
        }
        double nFlat = GradClip.ClipGradNorm(flat, 1.0, @foreach: true);
        double nLoop = GradClip.ClipGradNorm(loop, 1.0, @foreach: false);
        Assert.Equal(nLoop, nFlat, 4);
        Assert.True(nLoop > 1.0, $"norm {nLoop} is clipped");
        for (int i = 0; i < flat.Length; i++) TensorAssert.Close(loop[i].grad!, flat[i].grad!, 1e-6, what: $"clipped grad {i}");
        Assert.Equal(flat[0].numel(), flat[1].grad!.storage_offset());
        Assert.Equal(1.0, GradClip.ClipGradNorm(flat, 0, @foreach: true), 4);
        Assert.Equal(flat[0].numel(), flat[1].grad!.storage_offset());
    }

    /// <summary>
    /// Clipping in the optimizer's flat runs (what the Trainer does on CUDA): the norm and clipped gradients equal the
    /// per-tensor path up to the summation order; each bucket's gradients become back-to-back views of a buffer of
    /// their own (no buffer over all gradients), so the multi-tensor step views them; parameters not in the optimizer
    /// form a last run; and the step after it equals the per-parameter step on the per-tensor clip's gradients.
    /// </summary>
    [Fact]
    public void ClipInTheOptimizersRunsLeavesOneBufferPerBucketForTheStep()
    {
        var flat = Params(43, MixedShapes);
        var loop = Params(43, MixedShapes);
        var extraFlat = new Parameter(randn(9));
        var extraLoop = new Parameter(extraFlat.detach().clone());
        ParamGroup[] Groups(Parameter[] p) => [new(["a", "b", "c", "d"], p.Take(4).ToArray(), 0.01), new(["e", "f"], p.Skip(4).ToArray(), 0.0)];
        // cap 1,700 bytes: [a, b, c], [d] in the first group; [e, f] in the second (a run never crosses a group)
        using var a = new AdamW(Groups(flat), 0.9, 0.999, 1e-8, @foreach: true, bucketCapBytes: 1700);
        using var c = new AdamW(Groups(loop), @foreach: false);
        for (int i = 0; i < flat.Length; i++)
        {
            var g = randn(MixedShapes[i]) * 3;
            flat[i].grad = g.clone();
            loop[i].grad = g.clone();
        }
        var gExtra = randn(9);
        extraFlat.grad = gExtra.clone();
        extraLoop.grad = gExtra.clone();

        var runs = GradClip.RunsOf(a, [.. flat.Reverse(), extraFlat]);
        Assert.Equal(new[] { 3, 1, 2, 1 }, runs.Select(r => r.Count).ToArray());
        double nFlat;
        using (NewDisposeScope()) nFlat = GradClip.NormAndClip(runs, 1.0, @foreach: true).item<float>();
        double nLoop = GradClip.ClipGradNorm([.. loop, extraLoop], 1.0, @foreach: false);
        Assert.Equal(nLoop, nFlat, 4);
        Assert.True(nLoop > 1.0, $"norm {nLoop} is clipped");
        for (int i = 0; i < flat.Length; i++) TensorAssert.Close(loop[i].grad!, flat[i].grad!, 1e-6, what: $"clipped grad {i}");
        TensorAssert.Close(extraLoop.grad!, extraFlat.grad!, 1e-6, what: "clipped grad of the parameter outside the optimizer");
        Assert.Equal(new long[] { 0, 407, 414, 0, 0, 30 }, flat.Select(p => p.grad!.storage_offset()).ToArray());
        Assert.NotNull(FlatTensors.TryView(flat.Take(3).Select(p => p.grad!).ToList()));
        Assert.Null(FlatTensors.TryView(flat.Take(4).Select(p => p.grad!).ToList()));   // d's gradient: a buffer of its own

        // the step reads the clipped buffers as they are: it equals the per-parameter step on the per-tensor clip's gradients
        for (int i = 0; i < flat.Length; i++) loop[i].grad = flat[i].grad!.clone();
        a.SetLr(1e-2); c.SetLr(1e-2);
        a.Step(); c.Step();
        for (int i = 0; i < flat.Length; i++) AssertSameBits(loop[i], flat[i], $"param {i} after the step");
    }

    [Fact]
    public void OptimizerStateRoundTripsThroughSafetensorsAndJson()
    {
        using var dir = new TempDir();
        var (p1, p2) = Pair(7, 6);
        using var a = new AdamW([new ParamGroup(["w"], [p1], 0.0)]);
        using var b = new AdamW([new ParamGroup(["w"], [p2], 0.0)]);
        var g = randn(6);
        SetGrad(p1, g); a.SetLr(0.1); a.Step();
        a.Save(dir.Path);
        Assert.True(File.Exists(dir.File("optimizer.safetensors")));
        using (var f = Peft.Core.Safetensors.SafetensorsFile.Open(dir.File("optimizer.safetensors")))
            Assert.Equal(["state.0.exp_avg", "state.0.exp_avg_sq", "state.0.step"], f.Keys.Order());
        b.Load(dir.Path);
        using (no_grad()) p2.copy_(p1);
        var g2 = randn(6);
        SetGrad(p1, g2); SetGrad(p2, g2);
        a.Step(); b.Step();
        TensorAssert.Equal(p1, p2, "after resume");
        using var sgd = new Sgd([new ParamGroup(["w"], [p2], 0.0)]);
        var e = Assert.Throws<InvalidDataException>(() => sgd.Load(dir.Path));
        Assert.Contains("optimizer.json", e.Message);
    }

    private sealed class FooNorm : nn.Module
    {
        public FooNorm() : base("FooNorm")
        {
            scale = new Parameter(ones(4));
            RegisterComponents();
        }

#pragma warning disable CS0414 // registered by name, never read
        private readonly Parameter scale;
#pragma warning restore CS0414
    }

    private sealed class Tiny : nn.Module
    {
        public Tiny() : base("Tiny")
        {
            proj = nn.Linear(4, 4);
            my_custom = new FooNorm();
            self_attn_layer_norm = nn.LayerNorm(4);
            input_layernorm = nn.Linear(4, 4, hasBias: false);
            RegisterComponents();
        }

        private readonly Linear proj;
        private readonly FooNorm my_custom;
        private readonly LayerNorm self_attn_layer_norm;
        private readonly Linear input_layernorm;
    }

    [Fact]
    public void NoDecayForBiasesAndAnyNormLayer()
    {
        using var m = new Tiny();
        var groups = DecayRule.Groups(m, 0.01);
        Assert.Equal(["proj.weight"], groups[0].Names);
        Assert.Equal(0.01, groups[0].WeightDecay);
        Assert.Equal(["proj.bias", "my_custom.scale", "self_attn_layer_norm.weight", "self_attn_layer_norm.bias", "input_layernorm.weight"], groups[1].Names);
        Assert.Equal(0.0, groups[1].WeightDecay);
    }
}

/// <summary>
/// AdamW steps called outside any dispose scope (as a plain loop or the Trainer may) leave the live tensor count flat
/// in both forms: the flat state is bound once, and the gradient handles the optimizer reads are disposed.
/// </summary>
[Collection(LeakTestCollection.Name)]
public sealed class AdamWLeakTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void StepsOutsideAScopeDoNotLeakTensors(bool multiTensor)
    {
        manual_seed(91);
        var ps = new[] { new Parameter(randn(5, 3)), new Parameter(randn(7)) };
        using var opt = new AdamW([new ParamGroup(["a", "b"], ps, 0.01)], @foreach: multiTensor);
        using var g0 = randn(5, 3);
        using var g1 = randn(7);
        LeakCheck.AssertNoGrowth(() =>
        {
            using (var scope = NewDisposeScope())
            {
                ps[0].grad = g0.clone();   // the parameter keeps the gradient; the scope disposes this handle
                ps[1].grad = g1.clone();
            }
            opt.SetLr(1e-3);
            opt.Step();
            opt.ZeroGrad();
        }, 50, what: $"AdamW step (multi-tensor: {multiTensor}) outside a scope");
        foreach (var p in ps) p.Dispose();
    }
}
