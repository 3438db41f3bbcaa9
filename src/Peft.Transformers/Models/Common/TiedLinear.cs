using static TorchSharp.torch;

namespace Peft.Transformers.Models;

/// <summary>
/// An output projection that reuses another module's weight (HF tied <c>lm_head</c> / MLM decoder): y = x·Wᵀ where
/// W is read from the embedding at each call. It owns no parameters, so the shared matrix appears once in
/// <c>parameters()</c> and <c>state_dict()</c> (as HF saves it) and survives <c>to(dtype/device)</c>.
/// </summary>
public sealed class TiedLinear : nn.Module<Tensor, Tensor>
{
    private readonly Func<Tensor> _weight;

    /// <summary>Creates the projection over the weight returned by <paramref name="weight"/> ([out, in]).</summary>
    public TiedLinear(Func<Tensor> weight) : base("TiedLinear")
    {
        _weight = weight;
        RegisterComponents();
    }

    /// <summary>The shared weight [out, in] (owned by the embedding).</summary>
    public Tensor weight => _weight();

    /// <summary>x [..., in] → [..., out].</summary>
    public override Tensor forward(Tensor x)
    {
        var w = _weight();
        return nn.functional.linear(ModelOps.SameDevice(x.device, w.device) ? x : x.to(w.device), w); // a split model: x from the last layer's device
    }
}
