using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// AdaLoRA on a 2-D convolution (PEFT <c>adalora.SVDConv2d</c>): lora_A is [r, in · kh · kw], lora_B [out, r], and the
/// adapter adds conv2d(dropout(x), ΔW) with ΔW = (B · (A ⊙ E) · s / (ranknum + 1e-5)) reshaped to the base kernel
/// [out, in, kh, kw], using the base layer's stride, padding and dilation. Groups other than 1 are not supported.
/// </summary>
public class SvdConv2d : AdaLoraLayer
{
    private Conv2d Conv => (Conv2d)base_layer; // not a field: TorchSharp would register it as a second child

    /// <summary>Wraps <paramref name="baseLayer"/> and adds <paramref name="adapterName"/> with rank <paramref name="r"/>.</summary>
    public SvdConv2d(Conv2d baseLayer, string adapterName, int r, double alpha, AdaLoraConfig config) : base("SVDConv2d", baseLayer)
    {
        if (baseLayer.groups != 1 || baseLayer.padding is null)
            throw new NotSupportedException($"AdaLoRA on Conv2d needs groups = 1 and explicit padding (got groups {baseLayer.groups}).");
        RegisterComponents();
        UpdateLayer(adapterName, r, alpha, config);
    }

    /// <inheritdoc />
    protected override long AWidth => Conv.in_channels * Conv.kernel_size[0] * Conv.kernel_size[1];

    /// <inheritdoc />
    public override Tensor GetDeltaWeight(string adapterName)
    {
        var w = BaseWeight; // [out, in, kh, kw]
        return LoraB(adapterName).matmul(LoraA(adapterName) * LoraE(adapterName)) // [out, in·kh·kw]
            .mul(HeldScalars.Of(Scaling[adapterName])).div(RankNum(adapterName).add(HeldScalars.Of(1e-5), HeldScalars.One))
            .reshape(w.shape);
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
            var delta = GetDeltaWeight(name);
            var h = nn.functional.conv2d(Dropout(name).forward(AdapterDtype.CastTo(input, a.dtype)), delta,
                strides: Conv.stride, padding: Conv.padding, dilation: Conv.dilation, groups: Conv.groups);
            // PEFT: result += conv2d(...) (in place: computed in the promoted dtype, rounded once)
            return AdapterDtype.CastTo(result.add(h, HeldScalars.One), result.dtype);
        });
    }
}
