using System.Text;
using Peft.Core.Quantization;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Quantization;

public class QuantizedLinearTests
{
    private static (Tensor W, Tensor B, Tensor X) Data(long outF = 48, long inF = 128)
    {
        var gen = new Generator(11);
        return (randn([outF, inF], generator: gen) * 0.05, randn([outF], generator: gen) * 0.1, randn([3, 5, inF], generator: gen));
    }

    [Fact]
    public void Linear4bitForwardIsLinearOfTheDequantisedWeightPlusBias()
    {
        using var scope = NewDisposeScope();
        var (w, b, x) = Data();
        using var layer = new Linear4bit(w, b, FourBitFormat.Nf4, ScalarType.Float32, doubleQuant: true);
        var y = layer.forward(x);
        var expected = nn.functional.linear(x, layer.DequantizeWeight(ScalarType.Float32), b);
        TensorAssert.Close(expected, y, 1e-5, what: "forward");
        var cos = nn.functional.cosine_similarity(y.flatten(), nn.functional.linear(x, w, b).flatten(), 0).item<float>();
        Assert.True(cos > 0.99, $"cos {cos}");
        Assert.Equal(128, layer.InFeatures);
        Assert.Equal(48, layer.OutFeatures);
        Assert.False(layer.weight.requires_grad);
    }

    [Fact]
    public void Linear4bitComputesInComputeDtypeAndReturnsInputDtype()
    {
        using var scope = NewDisposeScope();
        var (w, b, x) = Data();
        using var layer = new Linear4bit(w, b, FourBitFormat.Nf4, ScalarType.BFloat16);
        var y = layer.forward(x);
        Assert.Equal(ScalarType.Float32, y.dtype);
        var expected = nn.functional.linear(x.to_type(ScalarType.BFloat16), layer.DequantizeWeight(ScalarType.BFloat16), b.to_type(ScalarType.BFloat16)).to_type(ScalarType.Float32);
        TensorAssert.Close(expected, y, 0, what: "bf16 compute");
    }

    [Fact]
    public void Linear4bitStateDictUsesBnbKeysAndJson()
    {
        using var scope = NewDisposeScope();
        var (w, b, _) = Data();
        using var layer = new Linear4bit(w, b, FourBitFormat.Nf4, ScalarType.Float32, doubleQuant: true);
        var sd = layer.state_dict();
        Assert.Equal(
            new[] { "bias", "weight", "weight.absmax", "weight.nested_absmax", "weight.nested_quant_map", "weight.quant_map", "weight.quant_state.bitsandbytes__nf4" },
            sd.Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray());
        Assert.Equal(new long[] { 48 * 128 / 2, 1 }, sd["weight"].shape);
        Assert.Equal(ScalarType.Byte, sd["weight.absmax"].dtype);
        var json = Encoding.UTF8.GetString(sd["weight.quant_state.bitsandbytes__nf4"].data<byte>().ToArray());
        var offset = layer.State.Nested!.Offset;
        Assert.Equal($"{{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [48, 128], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": {BnbQuantStateJson.PythonFloat(offset)}}}", json);
        Assert.Equal(offset, float.Parse(BnbQuantStateJson.PythonFloat(offset), System.Globalization.CultureInfo.InvariantCulture));
    }

    [Theory]
    [InlineData(0.0123456789f, "0.012345679104328156")]
    [InlineData(1.5e-05f, "1.4999999621068127e-05")]
    [InlineData(2f, "2.0")]
    public void PythonFloatReprMatchesPython(float value, string python)
    {
        // Python: repr(float(numpy.float32(value)))
        Assert.Equal(python, BnbQuantStateJson.PythonFloat(value));
    }

    [Fact]
    public void Linear4bitRoundTripsThroughBnbSerialisedTensors()
    {
        using var scope = NewDisposeScope();
        var (w, b, x) = Data();
        using var layer = new Linear4bit(w, b, FourBitFormat.Fp4, ScalarType.Float32, blocksize: 128, doubleQuant: true);
        var sd = layer.state_dict();
        using var again = Linear4bit.FromBnbState(sd, ScalarType.Float32);
        Assert.Equal("fp4", again.State.Format.Name);
        Assert.Equal(128, again.State.Blocksize);
        TensorAssert.Close(layer.forward(x), again.forward(x), 0, what: "reloaded");
        var missing = sd.Where(kv => kv.Key != "weight.absmax").ToDictionary(kv => kv.Key, kv => kv.Value);
        var e = Assert.Throws<InvalidDataException>(() => Linear4bit.FromBnbState(missing, ScalarType.Float32, "model.layers.0.q_proj"));
        Assert.Contains("model.layers.0.q_proj", e.Message);
        Assert.Contains("weight.absmax", e.Message);
    }

    [Fact]
    public void DtypeCastIsRefusedAndDeviceMoveKeepsState()
    {
        using var scope = NewDisposeScope();
        var (w, b, x) = Data();
        using var l4 = new Linear4bit(w, b, FourBitFormat.Nf4, ScalarType.Float32, doubleQuant: true);
        using var l8 = new Linear8bit(w, b);
        var e4 = Assert.Throws<InvalidOperationException>(() => l4.to(ScalarType.BFloat16));
        Assert.Contains("Linear4bit", e4.Message);
        Assert.Throws<InvalidOperationException>(() => l8.to(ScalarType.Float16));
        var before = l4.forward(x);
        l4.to(CPU);
        l8.to(CPU);
        TensorAssert.Close(before, l4.forward(x), 0, what: "after to(cpu)");
        Assert.Equal(7, l4.state_dict().Count);
    }

    [Fact]
    public void FootprintIsThePackedSize()
    {
        using var scope = NewDisposeScope();
        var (w, b, _) = Data(256, 512);
        using var l4 = new Linear4bit(w, null, FourBitFormat.Nf4, ScalarType.Float32, doubleQuant: true);
        long blocks = 256 * 512 / 64;
        long json = l4.state_dict()["weight.quant_state.bitsandbytes__nf4"].numel();
        Assert.Equal(256 * 512 / 2 + blocks + 16 * 4 + 8 * 4 + 256 * 4 + json, l4.StorageBytes);
        using var l8 = new Linear8bit(w, b);
        Assert.Equal(256 * 512 + 256 * 4 + 1 + 256 * 4, l8.parameters().Sum(p => p.numel() * p.ElementSize) + l8.buffers().Sum(t => t.numel() * t.ElementSize));
    }

    [Fact]
    public void Linear8bitMatchesLlmInt8RowwiseQuantisation()
    {
        using var scope = NewDisposeScope();
        var (w, b, x) = Data();
        using var layer = new Linear8bit(w, b);
        var w16 = w.to_type(ScalarType.Float16).to_type(ScalarType.Float32);          // bnb quantises W.to(float16)
        var scb = w16.abs().amax([1]);
        TensorAssert.Close(scb, layer.SCB, 0, what: "SCB");
        var y = layer.forward(x);
        var cos = nn.functional.cosine_similarity(y.flatten(), nn.functional.linear(x, w, b).flatten(), 0).item<float>();
        Assert.True(cos > 0.999, $"cos {cos}");
        Assert.Equal(new[] { "SCB", "bias", "weight", "weight_format" }, layer.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray());
        // round error per element ≤ SCB / 254 from the float16 weight
        var err = (layer.DequantizeWeight(ScalarType.Float32) - w16).abs();
        Assert.True((err <= (scb / 254.0 + 1e-7).unsqueeze(1)).all().item<bool>());
    }

    [Fact]
    public void ForwardDoesNotLeak()
    {
        var (w, b, x) = Data();
        using var l4 = new Linear4bit(w, b, FourBitFormat.Nf4, ScalarType.Float32, doubleQuant: true);
        using var l8 = new Linear8bit(w, b);
        LeakCheck.AssertNoGrowth(() => { using var a = l4.forward(x); using var c = l8.forward(x); }, iterations: 10, what: "quantized forward");
        l8.eval();                                                               // LLM.int8 with its autograd node
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = NewDisposeScope();
            var xi = x.detach().requires_grad_(true);
            l8.forward(xi).sum().backward();
        }, iterations: 10, what: "int8 forward + backward");
        w.Dispose(); b.Dispose(); x.Dispose();
    }
}
