using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Modules;

/// <summary>
/// GPT-2's "Conv1D": a linear layer whose weight is stored transposed, [in, out], so that y = x·W + b.
/// HF equivalent: <c>transformers.pytorch_utils.Conv1D</c>. Kept as its own type because the state-dict layout is a
/// public contract (checkpoints store [in, out]) and because LoRA must know to use <c>fan_in_fan_out</c> on it.
/// </summary>
public sealed class Conv1D : nn.Module<Tensor, Tensor>
{
    /// <summary>[in, out].</summary>
    public readonly Parameter weight;

    /// <summary>[out].</summary>
    public readonly Parameter bias;

    /// <summary>Input features (rows of <see cref="weight"/>).</summary>
    public long InFeatures => weight.shape[0];

    /// <summary>Output features (columns of <see cref="weight"/>).</summary>
    public long OutFeatures => weight.shape[1];

    /// <summary>Creates the layer with HF's initialisation (weight ~ N(0, 0.02), bias = 0).</summary>
    public Conv1D(long outFeatures, long inFeatures, ScalarType? dtype = null, Device? device = null) : base("Conv1D")
    {
        // Parameters are long-lived: detach them from any dispose scope the constructor runs in (as TorchSharp's Linear does).
        weight = (Parameter)new Parameter(normal(0, 0.02, [inFeatures, outFeatures], dtype: dtype ?? ScalarType.Float32, device: device)).DetachFromDisposeScope();
        bias = (Parameter)new Parameter(zeros([outFeatures], dtype: dtype ?? ScalarType.Float32, device: device)).DetachFromDisposeScope();
        RegisterComponents();
    }

    /// <summary>x [..., in] → [..., out].</summary>
    public override Tensor forward(Tensor x) => addmm(bias, x.reshape(-1, x.shape[^1]), weight, 1, 1).view([.. x.shape[..^1], OutFeatures]);
}
