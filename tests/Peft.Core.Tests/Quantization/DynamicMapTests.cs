using Peft.Core.Quantization;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Quantization;

public class DynamicMapTests
{
    [Fact]
    public void MapHas256SortedValuesFromMinus0_99296875To1WithZeroAt127()
    {
        using var code = DynamicMap.Create();
        var v = code.data<float>().ToArray();
        Assert.Equal(256, v.Length);
        Assert.True(v.Zip(v.Skip(1)).All(p => p.First <= p.Second), "sorted");
        Assert.Equal(1f, v[255]);
        Assert.Equal(0f, v[127]);
        // the largest magnitude of exponent 0: the mean of the last two points of linspace(0.1, 1, 65)
        Assert.Equal(-(float)((0.1 + 63 * (0.9 / 64) + 1.0) / 2), v[0], 6);
        // the smallest positive: 1e-6 · (0.1 + 1) / 2
        Assert.Equal(5.5e-7f, v[128], 12);
        Assert.Equal(127, v.Count(x => x < 0));
    }

    [Fact]
    public void EveryCodeValueEncodesToItsIndexAndMidpointsSplitNeighbours()
    {
        using var scope = NewDisposeScope();
        var code = DynamicMap.Create();
        var idx = DynamicMap.Encode(code, code);
        Assert.Equal(Enumerable.Range(0, 256).Select(i => (long)i).ToArray(), idx.data<long>().ToArray());
        // just above / below the midpoint of two neighbours goes to the nearer one
        var v = code.data<float>().ToArray();
        var xs = new List<float>();
        var expected = new List<long>();
        for (int k = 0; k < 255; k += 7)
        {
            float mid = (v[k] + v[k + 1]) * 0.5f;
            float gap = v[k + 1] - v[k];
            xs.Add(mid - gap * 0.01f); expected.Add(k);
            xs.Add(mid + gap * 0.01f); expected.Add(k + 1);
        }
        var got = DynamicMap.Encode(tensor(xs.ToArray()), code).data<long>().ToArray();
        Assert.Equal(expected.ToArray(), got);
    }

    [Fact]
    public void NaNEncodesToZero()
    {
        using var scope = NewDisposeScope();
        var code = DynamicMap.Create();
        Assert.Equal(0L, DynamicMap.Encode(tensor(new[] { float.NaN }), code).item<long>());
    }
}
