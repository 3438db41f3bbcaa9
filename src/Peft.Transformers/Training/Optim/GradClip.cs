using TorchSharp;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Optimization;

/// <summary>Gradient clipping as torch's <c>clip_grad_norm_</c>, returning the norm before clipping.</summary>
public static class GradClip
{
    /// <summary>
    /// The 2-norm of all gradients of <paramref name="parameters"/>, then every gradient scaled by
    /// <c>min(1, maxNorm / (norm + 1e-6))</c>. Parameters without a gradient are skipped; with
    /// <paramref name="maxNorm"/> ≤ 0 only the norm is computed. Returns the pre-clip norm (one host read).
    /// </summary>
    /// <param name="parameters">The parameters whose <c>grad</c> is read and scaled in place.</param>
    /// <param name="maxNorm">The largest norm kept.</param>
    /// <param name="foreach">torch's <c>foreach</c>. False: one norm per gradient, the norm of their stack, one
    /// <c>mul_</c> per gradient (torch's CPU path, bit for bit). True: the gradients of each (dtype, device) are read
    /// as flat buffers of at most <see cref="FlatTensors.BucketCapBytes"/> (a view when they already lie back to back,
    /// else one <c>cat</c>, after which the gradients become views of it), one norm and one <c>mul_</c> per buffer, the
    /// norm of those norms: the same value up to the summation order, as torch's <c>_foreach_norm</c> on CUDA.
    /// Null (default): true when the first gradient is on a CUDA device.</param>
    public static double ClipGradNorm(IEnumerable<Tensor> parameters, double maxNorm, bool? @foreach = null)
    {
        using var scope = NewDisposeScope();
        return NormAndClip(parameters, maxNorm, @foreach).to(ScalarType.Float64).item<double>();
    }

    /// <summary>
    /// <see cref="ClipGradNorm"/> without the host read: returns the pre-clip norm as a 0-d tensor of the gradients'
    /// dtype on their device (in the caller's dispose scope; a 0-d float32 CPU zero when no parameter has a gradient).
    /// Launches only device work, so it can be captured in a CUDA graph.
    /// </summary>
    internal static Tensor NormAndClip(IEnumerable<Tensor> parameters, double maxNorm, bool? @foreach = null) =>
        NormAndClip([parameters.ToList()], maxNorm, @foreach);

    /// <summary>
    /// <see cref="NormAndClip(IEnumerable{Tensor}, double, bool?)"/> over the parameters of <paramref name="runs"/>
    /// (as torch, a parameter listed twice counts twice; <see cref="RunsOf"/> lists each once). In the flat form each
    /// run's gradients of one dtype and device become flat buffers of at most <see cref="FlatTensors.BucketCapBytes"/>
    /// (a larger gradient alone): given the optimizer's <see cref="TrainerOptimizer.FlatRuns"/>, its multi-tensor step
    /// then views them instead of copying them again, and no buffer over all gradients is allocated.
    /// </summary>
    internal static Tensor NormAndClip(IEnumerable<IReadOnlyList<Tensor>> runs, double maxNorm, bool? @foreach = null)
    {
        using var _ = no_grad();
        var withGrad = runs.Select(run => run.Select(p => (p, g: p.grad))
            .Where(x => x.g is not null).Select(x => (x.p, g: x.g!)).ToList()).Where(run => run.Count > 0).ToList();
        if (withGrad.Count == 0) return zeros([], ScalarType.Float32);
        var device = withGrad[0][0].g.device;
        bool flat = @foreach ?? device.type == DeviceType.CUDA;
        using var scope = NewDisposeScope();
        var buffers = flat
            ? withGrad.SelectMany(run => run.GroupBy(x => (x.g.dtype, x.g.device.ToString())))
                .SelectMany(g => FlatTensors.Runs(g.ToList(), x => x.g.numel() * x.g.ElementSize, FlatTensors.BucketCapBytes))
                .Select(Flatten).ToList()
            : withGrad.SelectMany(run => run.Select(x => x.g)).ToList();
        var norms = buffers.Select(b => TwoNorm(b).to(device)).ToArray();
        var total = TwoNorm(stack(norms));
        if (maxNorm > 0)
        {
            // add(Scalar) would make its alpha (1) an implicit Scalar inside TorchSharp: passed held instead.
            var coef = (HeldScalars.Of(maxNorm) / total.add(HeldScalars.Of(1e-6), HeldScalars.One)).clamp_max(HeldScalars.Of(1.0));
            foreach (var b in buffers) b.mul_(b.device == device ? coef : coef.to(b.device));
        }
        return total.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <paramref name="parameters"/> grouped as <paramref name="optimizer"/>'s <see cref="TrainerOptimizer.FlatRuns"/>
    /// (those it does not hold: one last run), for <see cref="NormAndClip(IEnumerable{IReadOnlyList{Tensor}}, double, bool?)"/>.
    /// </summary>
    internal static List<IReadOnlyList<Tensor>> RunsOf(TrainerOptimizer optimizer, IReadOnlyList<Tensor> parameters)
    {
        var wanted = parameters.Select(p => p.Handle).ToHashSet();
        var runs = optimizer.FlatRuns().Select(r => (IReadOnlyList<Tensor>)r.Where(p => wanted.Remove(p.Handle)).ToList())
            .Where(r => r.Count > 0).ToList();
        var rest = parameters.Where(p => wanted.Contains(p.Handle)).ToList();
        if (rest.Count > 0) runs.Add(rest);
        return runs;
    }

    /// <summary>
    /// torch's <c>linalg.vector_norm(t, 2)</c> over all elements (a 0-d tensor of t's dtype). Not TorchSharp's
    /// <c>linalg.vector_norm(t, double)</c>: it passes <c>ord.ToScalar().Handle</c> and drops the Scalar, whose
    /// finalizer could then free it while libtorch reads it (the checkpoint fuzz's rare ExternalException "toDouble"
    /// from <c>linalg_vector_norm</c>, docs/ARCHITECTURE.md "Scalars and the finalizer"). <c>Tensor.norm(2f)</c> builds
    /// the Scalar in native code and is the same kernel (<c>at::norm</c> → <c>linalg_vector_norm</c>, ord 2.0, every dimension).
    /// </summary>
    private static Tensor TwoNorm(Tensor t) => t.norm(2.0f);

    // One flat buffer over the gradients: a view when they already lie back to back, else a cat whose views replace them.
    private static Tensor Flatten(IReadOnlyList<(Tensor Param, Tensor Grad)> items)
    {
        var grads = items.Select(x => x.Grad).ToList();
        if (FlatTensors.TryView(grads) is { } view) return view;
        var flat = cat(grads.Select(g => g.reshape(-1)).ToArray()); // [Σ numel]
        long offset = 0;
        foreach (var (p, g) in items)
        {
            p.grad = flat.narrow(0, offset, g.numel()).view_as(g);
            offset += g.numel();
            g.Dispose();
        }
        return flat;
    }
}
