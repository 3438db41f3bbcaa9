using System.Text;
using Peft.Core.Modules;
using Peft.Core.Quantization;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Quantization;

/// <summary>
/// GPT-2's Conv1D stores its weight [in, out]; transformers 5 (<c>Bnb4bitQuantize</c> / <c>Bnb8bitQuantize</c>:
/// <c>if issubclass(module.source_cls, Conv1D): value = value.T</c>) quantises the transposed weight, so the
/// replacement is exactly bnb's layer for the equivalent Linear, [out, in]: same packed bytes, same state, and the
/// serialised tensors have the shapes transformers writes.
/// </summary>
public class Conv1DQuantizationTests
{
    private static Conv1D Conv(long outF, long inF)
    {
        var conv = new Conv1D(outF, inF);
        using (no_grad())
        {
            conv.weight.copy_(randn([inF, outF], generator: new Generator(17)) * 0.2);
            conv.bias.copy_(randn([outF], generator: new Generator(18)) * 0.1);
        }
        return conv;
    }

    [Theory]
    [InlineData("nf4", true)]
    [InlineData("fp4", false)]
    public void FourBitConv1DEqualsTheLinearOfTheTransposedWeight(string format, bool doubleQuant)
    {
        using var scope = NewDisposeScope();
        using var conv = Conv(80, 48);
        var settings = new QuantizationSettings(FourBitFormat.FromName(format), 64, doubleQuant);
        using var fromConv = (Linear4bit)ModelQuantizer.Quantize(conv, conv.weight, conv.bias, settings);
        using var fromLinear = new Linear4bit(conv.weight.t().contiguous(), conv.bias, FourBitFormat.FromName(format), ScalarType.Float32, 64, doubleQuant);
        var a = fromConv.state_dict();
        var b = fromLinear.state_dict();
        Assert.Equal(b.Keys.Order(StringComparer.Ordinal), a.Keys.Order(StringComparer.Ordinal));
        foreach (var (k, t) in b)
        {
            Assert.True(t.shape.SequenceEqual(a[k].shape), $"{k}: [{string.Join(", ", a[k].shape)}]");
            Assert.True(t.eq(a[k]).all().item<bool>(), $"{k} differs");
        }
        Assert.Equal(new long[] { 80 * 48 / 2, 1 }, a["weight"].shape);                // Params4bit packs [out, in] row-major
        var json = Encoding.UTF8.GetString(a[$"weight.quant_state.bitsandbytes__{format}"].data<byte>().ToArray());
        Assert.Contains("\"shape\": [80, 48]", json);
        var x = randn([3, 5, 48], generator: new Generator(19));
        TensorAssert.Close(fromLinear.forward(x), fromConv.forward(x), 0, what: "forward");
        var cos = nn.functional.cosine_similarity(fromConv.forward(x).flatten(), conv.forward(x).flatten(), 0).item<float>();
        Assert.True(cos > 0.98, $"cosine to the float Conv1D {cos}");
    }

    [Fact]
    public void EightBitConv1DEqualsTheLinearOfTheTransposedWeight()
    {
        using var scope = NewDisposeScope();
        using var conv = Conv(80, 48);
        using var fromConv = (Linear8bit)ModelQuantizer.Quantize(conv, conv.weight, conv.bias, QuantizationSettings.Int8);
        using var fromLinear = new Linear8bit(conv.weight.t().contiguous(), conv.bias, threshold: 6.0);
        Assert.Equal(new long[] { 80, 48 }, fromConv.weight.shape);                     // Int8Params CB [out, in]
        Assert.Equal(new long[] { 80 }, fromConv.SCB.shape);
        TensorAssert.Equal(fromLinear.weight, fromConv.weight, "CB");
        TensorAssert.Close(fromLinear.SCB, fromConv.SCB, 0, what: "SCB");
        Assert.Equal(6.0, fromConv.Threshold);
        fromConv.eval();
        fromLinear.eval();
        var x = randn([3, 5, 48], generator: new Generator(20));
        TensorAssert.Close(fromLinear.forward(x), fromConv.forward(x), 0, what: "forward");
    }
}
