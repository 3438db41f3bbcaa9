using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// LoRA on a 2-D convolution (PEFT <c>lora.Conv2d</c>): y = base(x) + s · B(A(dropout(x))) with A = Conv2d(in → r, the
/// base kernel, stride and padding, no bias) and B = Conv2d(r → out, 1×1, no bias). State-dict keys as
/// <see cref="LoraLinear"/>. Groups and dilation other than 1, and DoRA, are not supported.
/// </summary>
public sealed class LoraConv2d : LoraLayer
{
    private readonly AdapterModuleDict<nn.Module<Tensor, Tensor>> lora_dropout = new();
    private readonly AdapterModuleDict<Conv2d> lora_A = new();
    private readonly AdapterModuleDict<Conv2d> lora_B = new();
    private Conv2d Conv => (Conv2d)base_layer; // not a field: TorchSharp would register it as a second child

    /// <summary>Wraps <paramref name="baseLayer"/> and adds <paramref name="adapterName"/>.</summary>
    public LoraConv2d(Conv2d baseLayer, string adapterName, int r, double alpha, LoraConfig config) : base("LoraConv2d", baseLayer)
    {
        if (baseLayer.groups != 1 || baseLayer.dilation.Any(d => d != 1) || baseLayer.padding is null)
            throw new NotSupportedException($"LoRA on Conv2d needs groups = 1, dilation = 1 and explicit padding (got groups {baseLayer.groups}, dilation [{string.Join(", ", baseLayer.dilation)}]).");
        RegisterComponents();
        UpdateLayer(adapterName, r, alpha, config);
    }

    /// <summary>lora_A of an adapter: weight [r, in, kh, kw].</summary>
    public Conv2d LoraA(string adapterName) => lora_A[adapterName];

    /// <summary>lora_B of an adapter: weight [out, r, 1, 1].</summary>
    public Conv2d LoraB(string adapterName) => lora_B[adapterName];

    /// <inheritdoc />
    public override void UpdateLayer(string adapterName, int r, double alpha, LoraConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.UseDora) throw new NotSupportedException("DoRA on Conv2d layers is not supported by Peft.NET.");
        SetAdapterScale(adapterName, r, alpha, config);
        var w = BaseWeight;
        var k = Conv.kernel_size;
        var a = nn.Conv2d(Conv.in_channels, r, (k[0], k[1]), stride: (Conv.stride[0], Conv.stride[1]),
            padding: (Conv.padding![0], Conv.padding[1]), bias: false, device: w.device, dtype: w.dtype);
        var b = nn.Conv2d(r, Conv.out_channels, (1, 1), bias: false, device: w.device, dtype: w.dtype);
        InitLinearFamilyWeights(a.weight, b.weight, config, r);
        lora_dropout.Set(adapterName, config.LoraDropout > 0 ? nn.Dropout(config.LoraDropout) : nn.Identity());
        lora_A.Set(adapterName, a);
        lora_B.Set(adapterName, b);
        SetAdapter(ActiveAdapters);
    }

    /// <inheritdoc />
    public override Tensor GetDeltaWeight(string adapterName)
    {
        var a = lora_A[adapterName].weight; // [r, in, kh, kw]
        var b = lora_B[adapterName].weight; // [out, r, 1, 1]
        Tensor delta = a.shape[2] == 1 && a.shape[3] == 1
            ? b.flatten(1).matmul(a.flatten(1)).view(b.shape[0], a.shape[1], 1, 1)
            : nn.functional.conv2d(a.permute(1, 0, 2, 3), b).permute(1, 0, 2, 3);
        return delta.mul(HeldScalars.Of(Scaling[adapterName]));
    }

    /// <inheritdoc />
    protected override IEnumerable<Parameter> AdapterParameters(string adapterName)
    {
        if (lora_A.TryGetValue(adapterName, out var a)) yield return a.weight;
        if (lora_B.TryGetValue(adapterName, out var b)) yield return b.weight;
    }

    /// <inheritdoc />
    protected override void RemoveLoraState(string adapterName)
    {
        lora_A.Remove(adapterName);
        lora_B.Remove(adapterName);
        lora_dropout.Remove(adapterName);
    }

    /// <inheritdoc />
    /// <remarks>PEFT's default merge (<c>weight.data += delta</c>): a float32 delta is added in float32 and rounded once.</remarks>
    protected override Tensor MergedWeight(string adapterName, Tensor weight) =>
        AdapterDtype.CastTo(weight.add(GetDeltaWeight(adapterName), HeldScalars.One), weight.dtype);

    /// <inheritdoc />
    protected override Tensor UnmergedWeight(string adapterName, Tensor weight) => weight - GetDeltaWeight(adapterName).to(weight.dtype);

    /// <inheritdoc />
    public override IEnumerable<(string Name, Tensor Value)> AdapterTensors(string adapterName)
    {
        yield return ("lora_A.weight", lora_A[adapterName].weight);
        yield return ("lora_B.weight", lora_B[adapterName].weight);
    }

    /// <inheritdoc />
    public override void LoadAdapterTensor(string adapterName, string name, Tensor value, string key)
    {
        Tensor target = name switch
        {
            "lora_A.weight" => lora_A[adapterName].weight,
            "lora_B.weight" => lora_B[adapterName].weight,
            _ => throw new InvalidDataException($"adapter tensor '{key}': LoRA Conv2d has no '{name}' (expected lora_A.weight, lora_B.weight)."),
        };
        CopyChecked(target, value, key);
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x) => AdapterForward(x, lora_A.ContainsKey, Branch);

    /// <inheritdoc />
    protected override ScalarType? AdapterInputDtype(string adapterName) => lora_A[adapterName].weight.dtype;

    private Tensor Branch(string name, Tensor x) =>
        lora_B[name].forward(lora_A[name].forward(lora_dropout[name].forward(x))).mul(HeldScalars.Of(Scaling[name]));
}
