using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Models;

/// <summary>Root-mean-square layer norm computed in float32 (HF <c>LlamaRMSNorm</c> / <c>Qwen2RMSNorm</c>).</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    /// <summary>Scale [hidden].</summary>
    public Parameter weight;
    private readonly double _eps;

    /// <summary>Creates the norm with weight = 1 (on <paramref name="device"/>; default CPU).</summary>
    public RmsNorm(long hidden, double eps, Device? device = null) : base("RmsNorm")
    {
        weight = new Parameter(ones(hidden, device: device));
        _eps = eps;
        RegisterComponents();
    }

    /// <summary>x [..., hidden] → same shape and dtype.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var dtype = x.dtype;
        var h = x.to_type(ScalarType.Float32);
        var variance = h.pow(HeldScalars.Of(2)).mean([-1], keepdim: true);
        h = h * rsqrt(variance + HeldScalars.Of(_eps));
        return (weight * h.to_type(dtype)).MoveToOuterDisposeScope();
    }
}
