using static TorchSharp.torch;
using Peft.Core.Torch;
using Peft.Core.Torch.Cuda;

namespace Peft.Transformers.Optimization;

/// <summary>
/// The step-dependent values of one AdamW bucket in the graph form, as 0-d device tensors of the parameters' dtype
/// (a captured CUDA graph replays fixed kernel arguments, so a value that changes per step must live in device
/// memory, as in torch's <c>capturable=True</c> AdamW). Filled before each step with <see cref="Fill"/>.
/// </summary>
internal sealed class AdamWGraphFactors : IDisposable
{
    /// <param name="dtype">The parameters' dtype.</param>
    /// <param name="device">The parameters' device.</param>
    public AdamWGraphFactors(ScalarType dtype, Device device)
    {
        Decay = zeros([], dtype, device).DetachFromDisposeScope();
        Bc2SqrtTimesNegStep = zeros([], dtype, device).DetachFromDisposeScope();
        EpsOverNegStep = zeros([], dtype, device).DetachFromDisposeScope();
        FusedScalars = zeros([3], ScalarType.Float32, device).DetachFromDisposeScope();
        _fusedViews = [.. Enumerable.Range(0, 3).Select(i => FusedScalars.select(0, i).DetachFromDisposeScope())];
    }

    private readonly Tensor[] _fusedViews;

    /// <summary>
    /// The fused AdamW kernel's step-dependent scalars, float32 [3]: 1 − lr·wd, −lr / (1 − β1^t), 1 / √(1 − β2^t)
    /// (the last divided in float32, as the eager div_ by a CPU scalar does).
    /// </summary>
    public Tensor FusedScalars { get; }

    /// <summary>Writes the fused kernel's values for the next step (three fill kernels; no host sync).</summary>
    public void FillFused(double decay, double negStepSize, double bc2Sqrt)
    {
        _fusedViews[0].fill_(HeldScalars.Of(decay));
        _fusedViews[1].fill_(HeldScalars.Of(negStepSize));
        _fusedViews[2].fill_(HeldScalars.Of((double)AdamWScalars.Reciprocal(bc2Sqrt)));
    }

    /// <summary><c>1 - lr·wd</c>, [].</summary>
    public Tensor Decay { get; }

    /// <summary><c>sqrt(1 - β2^t) · (-lr / (1 - β1^t))</c>, [].</summary>
    public Tensor Bc2SqrtTimesNegStep { get; }

    /// <summary><c>ε / (-lr / (1 - β1^t))</c>, [].</summary>
    public Tensor EpsOverNegStep { get; }

    /// <summary>Writes the next step's values (one fill kernel each on the current stream; no host sync).</summary>
    public void Fill(double decay, double bc2SqrtTimesNegStep, double epsOverNegStep)
    {
        Decay.fill_(HeldScalars.Of(decay));
        Bc2SqrtTimesNegStep.fill_(HeldScalars.Of(bc2SqrtTimesNegStep));
        EpsOverNegStep.fill_(HeldScalars.Of(epsOverNegStep));
    }

    public void Dispose()
    {
        Decay.Dispose();
        Bc2SqrtTimesNegStep.Dispose();
        EpsOverNegStep.Dispose();
        foreach (var v in _fusedViews) v.Dispose();
        FusedScalars.Dispose();
    }
}
