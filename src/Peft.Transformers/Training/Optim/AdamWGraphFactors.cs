using static TorchSharp.torch;
using Peft.Core.Torch;

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
    }
}
