using TorchSharp.Modules;
using static TorchSharp.torch;
using TorchSharp;
using Peft.Core.Torch;
using Peft.Core.Torch.Cuda;

namespace Peft.Transformers.Models;

/// <summary>
/// Root-mean-square layer norm computed in float32 (HF <c>LlamaRMSNorm</c> / <c>Qwen2RMSNorm</c>). On CUDA, with the
/// weight in the input's dtype, it runs as one fused kernel forward and one backward (<see cref="RmsNormFunction"/>)
/// when <see cref="FusedKernels"/> are available; elsewhere the eager ops below.
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    /// <summary>Scale [hidden].</summary>
    public Parameter weight;
    private readonly double _eps;
    private readonly Scalar _epsScalar;   // float64, as HF's Python float; owned, disposed with the module

    /// <summary>Creates the norm with weight = 1 (on <paramref name="device"/>; default CPU).</summary>
    public RmsNorm(long hidden, double eps, Device? device = null) : base("RmsNorm")
    {
        weight = new Parameter(ones(hidden, device: device));
        _eps = eps;
        _epsScalar = eps.ToScalar();
        RegisterComponents();
    }

    /// <summary>x [..., hidden] → same shape and dtype (float32 inputs are not cast: HF's <c>.to(float32)</c> is then a no-op).</summary>
    public override Tensor forward(Tensor x)
    {
        if (FusedKernels.EnabledFor("rmsnorm") && FusedKernels.Applies(x, weight)) return RmsNormFunction.Apply(x, weight, _eps);
        using var scope = NewDisposeScope();
        var dtype = x.dtype;
        bool cast = dtype != ScalarType.Float32;
        var h = cast ? x.to_type(ScalarType.Float32) : x;
        var variance = h.pow(ConstScalars.Two).mean([-1], keepdim: true);
        h = h * rsqrt(variance.add(_epsScalar, HeldScalars.One));
        return (weight * (cast ? h.to_type(dtype) : h)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _epsScalar.Dispose();
        base.Dispose(disposing);
    }
}
