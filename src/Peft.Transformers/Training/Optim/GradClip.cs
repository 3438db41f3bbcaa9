using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Optimization;

/// <summary>Gradient clipping as torch's <c>clip_grad_norm_</c>, returning the norm before clipping.</summary>
public static class GradClip
{
    /// <summary>
    /// The 2-norm of all gradients of <paramref name="parameters"/> (the norm of the per-tensor norms, in order),
    /// then every gradient scaled by <c>min(1, maxNorm / (norm + 1e-6))</c>. Parameters without a gradient are
    /// skipped; with <paramref name="maxNorm"/> ≤ 0 only the norm is computed. Returns the pre-clip norm.
    /// </summary>
    public static double ClipGradNorm(IEnumerable<Tensor> parameters, double maxNorm)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0.0;
        var device = grads[0].device;
        var norms = grads.Select(g => linalg.vector_norm(g, 2).to(device)).ToArray();
        var total = linalg.vector_norm(stack(norms), 2);
        if (maxNorm > 0)
        {
            var coef = (maxNorm / (total + 1e-6)).clamp_max(1.0);
            foreach (var g in grads) g.mul_(coef.to(g.device));
        }
        return total.to(ScalarType.Float64).item<double>();
    }
}
