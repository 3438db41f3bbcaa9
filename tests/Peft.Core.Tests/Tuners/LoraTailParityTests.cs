using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners;

/// <summary>
/// The eager LoRA linear tail rounds as PEFT's <c>result = result + lora_B(lora_A(dropout(x))) * scaling</c>: the
/// product is rounded, then added (torch's one-kernel <c>add(h, alpha)</c> is a fused multiply-add and differs in the
/// last bit for scalings that are not powers of two). Forward outputs and the adapter gradients are compared bit for
/// bit with that op chain written out from the layer's own tensors, for float32 and bfloat16 models (float32
/// adapters; there the layer adds into the base output in place while autograd records), several lora_alpha / r pairs
/// and rsLoRA, with an input that is a constant and one that requires grad (a later layer's: its gradient compared too).
/// </summary>
public class LoraTailParityTests
{
    private const string Name = "default";

    public static TheoryData<int, double, bool, bool, bool> Cases() => new()
    {
        { 4, 1.2, false, false, false },   // s = 0.3
        { 4, 6.8, false, false, false },   // s = 1.7
        { 4, 8, false, false, false },     // s = 2 (exact: the one-kernel path)
        { 4, 2, false, false, false },     // s = 0.5
        { 8, 16, true, false, false },     // rsLoRA: 16 / √8
        { 4, 8, false, false, true },
        { 4, 1.2, false, true, false },    // bf16 base, float32 adapter
        { 4, 8, false, true, false },
        { 8, 16, true, true, false },
        { 4, 1.2, false, true, true },     // ... and an input that requires grad
        { 4, 8, false, true, true },
        { 16, 8, false, true, true },      // s = 0.5
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Forward_and_adapter_gradients_equal_PEFTs_multiply_then_add(int r, double alpha, bool rslora, bool bf16, bool inputGrad)
    {
        using var scope = NewDisposeScope();
        var model = new TinyMlp();
        if (bf16) model.to(ScalarType.BFloat16);
        var config = new LoraConfig { R = r, LoraAlpha = alpha, UseRslora = rslora, TargetModules = ["lin0"], InitLoraWeights = false };
        using var pm = PeftModel.GetPeftModel(model, config);
        var layer = (LoraLinear)pm.Tuner.TunerLayers().Single(l => l.Path == "lin0").Layer;
        double s = layer.Scaling[Name];
        Assert.Equal(rslora ? alpha / Math.Sqrt(r) : alpha / r, s, 12);
        var x = randn([4, 7, TinyMlp.Dim], generator: new Generator(11));
        if (bf16) x = x.to(ScalarType.BFloat16);
        if (inputGrad) x.requires_grad_(true);
        var gx = AssertLayerGivesPeftsChain(layer, x, x);
        Assert.Equal(inputGrad, gx);
    }

    // The layer's forward and the gradients of A, B and (when it requires grad) the leaf x against PEFT's chain written
    // out from the layer's own modules, bit for bit; input is x or a view of it. Returns whether x's gradient was compared.
    private static bool AssertLayerGivesPeftsChain(LoraLinear layer, Tensor input, Tensor x)
    {
        double s = layer.Scaling[Name];
        var a = layer.LoraA(Name).weight;
        var b = layer.LoraB(Name).weight;
        var h = layer.LoraB(Name).forward(layer.LoraA(Name).forward(input.to(a.dtype)));
        var expected = layer.BaseLayer.forward(input).add(h.mul(s)).to(input.dtype);
        var (ga, gb, gx) = Grads(expected, a, b, x);
        var actual = layer.forward(input);
        AssertBitEqual(expected, actual, $"forward (s = {s})");
        var (ga2, gb2, gx2) = Grads(actual, a, b, x);
        AssertBitEqual(ga, ga2, "grad lora_A");
        AssertBitEqual(gb, gb2, "grad lora_B");
        if (gx is not null) AssertBitEqual(gx, gx2!, "grad x");
        return gx is not null;
    }

    /// <summary>
    /// The same parity for inputs of 2, 3 and 4 dims and a non-contiguous one (the in-place float32 tail on a bfloat16
    /// model included): output and the gradients of A, B and x bit-equal to PEFT's chain.
    /// </summary>
    [Theory]
    [InlineData(new long[] { 5, TinyMlp.Dim }, false, false)]
    [InlineData(new long[] { 3, 5, TinyMlp.Dim }, false, false)]
    [InlineData(new long[] { 2, 3, 5, TinyMlp.Dim }, false, false)]
    [InlineData(new long[] { 2, 3, 5, TinyMlp.Dim }, true, false)]
    [InlineData(new long[] { 3, 5, TinyMlp.Dim }, true, true)]
    [InlineData(new long[] { 3, 5, TinyMlp.Dim }, false, true)]
    public void Inputs_of_any_rank_and_layout_give_PEFTs_bits(long[] shape, bool bf16, bool transposed)
    {
        using var scope = NewDisposeScope();
        var model = new TinyMlp();
        if (bf16) model.to(ScalarType.BFloat16);
        var config = new LoraConfig { R = 4, LoraAlpha = 1.2, TargetModules = ["lin0"], InitLoraWeights = false };
        using var pm = PeftModel.GetPeftModel(model, config);
        var layer = (LoraLinear)pm.Tuner.TunerLayers().Single(l => l.Path == "lin0").Layer;
        var x = randn(transposed ? [shape[1], shape[0], shape[2]] : shape, generator: new Generator(13));
        if (bf16) x = x.to(ScalarType.BFloat16);
        x.requires_grad_(true);
        var input = transposed ? x.transpose(0, 1) : x;                      // [3, 5, Dim], non-contiguous when transposed
        Assert.Equal(!transposed, input.is_contiguous());
        Assert.True(AssertLayerGivesPeftsChain(layer, input, x));
    }

    private static (Tensor A, Tensor B, Tensor? X) Grads(Tensor output, Tensor a, Tensor b, Tensor x)
    {
        a.grad?.zero_();
        b.grad?.zero_();
        x.grad?.zero_();
        using var weights = linspace(-1, 1, output.numel(), dtype: output.dtype).reshape(output.shape);
        output.mul(weights).sum().backward();
        return (a.grad!.clone(), b.grad!.clone(), x.grad?.clone());
    }

    private static void AssertBitEqual(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.dtype, actual.dtype);
        Assert.Equal(expected.shape, actual.shape);
        long differing = expected.ne(actual).sum().item<long>();
        Assert.True(differing == 0, $"{what}: {differing} of {expected.numel()} elements differ from PEFT's op chain.");
    }
}
