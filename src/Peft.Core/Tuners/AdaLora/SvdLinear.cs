using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// AdaLoRA on a linear layer (PEFT <c>adalora.SVDLinear</c>): y = base(x) + (dropout(x) · (A ⊙ E)ᵀ · Bᵀ) · s / (ranknum + 1e-5).
/// Wraps <see cref="Linear"/>, GPT-2's <see cref="Peft.Core.Modules.Conv1D"/> (fan_in_fan_out) and any
/// <see cref="IBaseLayerWeight"/> linear. Merge adds ΔW = B · (A ⊙ E) · s / (ranknum + 1e-5) to the base weight.
/// Mixed-adapter batches are not supported (as in PEFT).
/// </summary>
public class SvdLinear : AdaLoraLayer
{
    /// <summary>Wraps <paramref name="baseLayer"/> and adds <paramref name="adapterName"/> with rank <paramref name="r"/>.</summary>
    public SvdLinear(nn.Module<Tensor, Tensor> baseLayer, string adapterName, int r, double alpha, AdaLoraConfig config) : base("SVDLinear", baseLayer)
    {
        if (baseLayer is not (Linear or Peft.Core.Modules.Conv1D or IBaseLayerWeight))
            throw new ArgumentException($"AdaLoRA SVDLinear cannot wrap a {baseLayer.GetType().Name}.", nameof(baseLayer));
        FanInFanOut = baseLayer is Peft.Core.Modules.Conv1D;
        RegisterComponents();
        UpdateLayer(adapterName, r, alpha, config);
    }

    /// <summary>True when the base weight is stored [in, out] (GPT-2 Conv1D).</summary>
    public bool FanInFanOut { get; }


    /// <inheritdoc />
    public override Tensor GetDeltaWeight(string adapterName)
    {
        var delta = LoraB(adapterName).matmul(LoraA(adapterName) * LoraE(adapterName)); // [out, in]
        if (FanInFanOut) delta = delta.t();
        return delta.mul(HeldScalars.Of(Scaling[adapterName])).div(RankNum(adapterName).add(HeldScalars.Of(1e-5), HeldScalars.One));
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        if (RowAdapterNames is not null)
            throw new NotSupportedException("AdaLoRA layers do not support mixed-adapter batches (adapter_names).");
        return ActiveAdaptersForward(x, (name, input, result) =>
        {
            if (!HasAdapter(name)) return result;
            var a = LoraA(name);
            var h = Dropout(name).forward(AdapterDtype.CastTo(input, a.dtype)).matmul((a * LoraE(name)).t()).matmul(LoraB(name).t()); // [..., out]
            // PEFT: result += ... (in place: computed in the promoted dtype, rounded once to the result's dtype)
            return AdapterDtype.CastTo(result.add(h.mul(HeldScalars.Of(Scaling[name])).div(RankNum(name).add(HeldScalars.Of(1e-5), HeldScalars.One)), HeldScalars.One), result.dtype);
        });
    }
}
