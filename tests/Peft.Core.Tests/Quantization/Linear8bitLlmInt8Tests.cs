using Peft.Core.Quantization;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Quantization;

/// <summary>
/// <see cref="Linear8bit"/> against a scalar re-statement of bitsandbytes' LLM.int8 (<c>Int8Params._quantize</c>,
/// <c>MatMul8bitLt.forward</c> with the CUDA kernels <c>kInt8VectorQuant</c> / <c>kdequant_mm_int32_fp16</c> and
/// <c>int8_mixed_scaled_mm</c>), written element by element with .NET's <see cref="Half"/>, round-half-even and
/// <see cref="MathF.FusedMultiplyAdd"/> instead of tensor ops.
/// </summary>
public class Linear8bitLlmInt8Tests
{
    private const float DequantConst = 6.200012e-05f;

    private static (Tensor W, Tensor B, Tensor X) Data(long outF, long inF, long rows, int seed)
    {
        var gen = new Generator((ulong)seed);
        return (randn([outF, inF], generator: gen) * 0.2, randn([outF], generator: gen) * 0.1, randn([rows, inF], generator: gen) * 2.0);
    }

    /// <summary>bnb <c>int8_vectorwise_quant(W.to(float16))</c>, one element at a time.</summary>
    private static (sbyte[,] CB, float[] SCB) QuantizeRows(float[,] w)
    {
        int rows = w.GetLength(0), cols = w.GetLength(1);
        var cb = new sbyte[rows, cols];
        var scb = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            float max = 0;
            for (int c = 0; c < cols; c++) max = Math.Max(max, Math.Abs((float)(Half)w[r, c]));
            scb[r] = max;
            float scale = 1f / max * 127f;                                  // torch: 127.0 / t == t.reciprocal() * 127
            for (int c = 0; c < cols; c++) cb[r, c] = (sbyte)Math.Round((float)(Half)w[r, c] * scale, MidpointRounding.ToEven);
        }
        return (cb, scb);
    }

    /// <summary>MatMul8bitLt.forward for a float32 input and float32 bias, element by element.</summary>
    private static float[,] ReferenceForward(float[,] x, sbyte[,] cb, float[] scb, float[] bias, double threshold)
    {
        int n = x.GetLength(0), inF = x.GetLength(1), outF = cb.GetLength(0);
        var a16 = new Half[n, inF];
        for (int r = 0; r < n; r++) for (int j = 0; j < inF; j++) a16[r, j] = (Half)x[r, j];
        var thr = (Half)threshold;
        bool IsOutlier(int r, int j) => threshold > 0 && Half.Abs(a16[r, j]) >= thr;
        var outlierCol = new bool[inF];
        for (int r = 0; r < n; r++) for (int j = 0; j < inF; j++) outlierCol[j] |= IsOutlier(r, j);
        var rs = new float[n];
        var ca = new int[n, inF];
        for (int r = 0; r < n; r++)
        {
            float max = 0;
            for (int j = 0; j < inF; j++) if (!IsOutlier(r, j)) max = Math.Max(max, (float)Half.Abs(a16[r, j]));
            rs[r] = max;
            float scale = 1f / max * 127f;                                  // torch: 127.0 / t == t.reciprocal() * 127
            for (int j = 0; j < inF; j++)
            {
                float q = MathF.Round((float)a16[r, j] * scale, MidpointRounding.ToEven);
                ca[r, j] = outlierCol[j] || float.IsNaN(q) ? 0 : (int)q;
            }
        }
        var y = new float[n, outF];
        for (int r = 0; r < n; r++)
        {
            for (int c = 0; c < outF; c++)
            {
                long acc = 0;
                for (int j = 0; j < inF; j++) acc += ca[r, j] * cb[c, j];
                float v = (float)acc * rs[r] * scb[c];
                var y16 = (Half)MathF.FusedMultiplyAdd(v, DequantConst, 0f);
                y[r, c] = (float)(Half)((float)y16 + bias[c]);                  // out.add_(bias) into the float16 output
                double outliers = 0;                                              // addmm of the outlier columns (float32 matmul)
                for (int j = 0; j < inF; j++)
                    if (outlierCol[j]) outliers += (double)x[r, j] * ((float)cb[c, j] * scb[c] * 7.874015718698502e-3f);
                y[r, c] += (float)outliers;
            }
        }
        return y;
    }

    private static float[,] ToArray(Tensor t)
    {
        var flat = t.to_type(ScalarType.Float32).contiguous().data<float>().ToArray();
        int rows = (int)t.shape[0], cols = (int)t.shape[1];
        var a = new float[rows, cols];
        for (int i = 0; i < flat.Length; i++) a[i / cols, i % cols] = flat[i];
        return a;
    }

    [Fact]
    public void WeightIsQuantizedFromFloat16AsInt8ParamsDoes()
    {
        using var scope = NewDisposeScope();
        var (w, b, _) = Data(40, 70, 1, 5);
        using var layer = new Linear8bit(w, b);
        var (cb, scb) = QuantizeRows(ToArray(w));
        var cbActual = layer.weight.data<sbyte>().ToArray();
        for (int r = 0; r < 40; r++)
        {
            Assert.Equal(scb[r], layer.SCB[r].item<float>());
            for (int c = 0; c < 70; c++) Assert.True(cb[r, c] == cbActual[r * 70 + c], $"CB[{r}, {c}]: {cbActual[r * 70 + c]} vs {cb[r, c]}");
        }
        // SCB holds float16 values; dequantisation is bnb's (CB · SCB) · float32(1/127)
        TensorAssert.Close(layer.SCB.to_type(ScalarType.Float16).to_type(ScalarType.Float32), layer.SCB, 0, what: "SCB is a float16 value");
        var expected = layer.weight.to_type(ScalarType.Float32) * layer.SCB.unsqueeze(1) * 7.874015718698502e-3f;
        TensorAssert.Close(expected, layer.DequantizeWeight(ScalarType.Float32), 0, what: "dequantised weight");
    }

    [Theory]
    [InlineData(0.0, false, 96)]
    [InlineData(6.0, false, 96)]
    [InlineData(6.0, true, 96)]
    [InlineData(0.0, false, 2500)]                                              // products summed over more than 1024 columns
    public void EvalForwardIsBnbMatmul8bitLtElementByElement(double threshold, bool withOutliers, long inFeatures)
    {
        using var scope = NewDisposeScope();
        var (w, b, x) = Data(24, inFeatures, 7, 9);
        if (withOutliers)
        {
            x[2, 5] = tensor(9.5f);                                             // an outlier column (5) ...
            x[4, 17] = tensor(-6.0f);                                           // ... one exactly at the threshold (≥) ...
            x[0, 40] = tensor(5.99f);                                           // ... and a value just below it
        }
        using var layer = new Linear8bit(w, b, threshold: threshold);
        layer.eval();
        var y = layer.forward(x.unsqueeze(0)).squeeze(0);                        // [7, 24] through the [B, T, in] path
        var (cb, scb) = QuantizeRows(ToArray(w));
        var expected = ReferenceForward(ToArray(x), cb, scb, b.data<float>().ToArray(), threshold);
        var actual = ToArray(y);
        double atol = threshold > 0 ? 2e-6 : 0;                                  // the outlier addmm sums in float32 (BLAS order); x·2 has natural outliers too
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 24; c++)
                Assert.True(Math.Abs(expected[r, c] - actual[r, c]) <= atol * Math.Max(1, Math.Abs(expected[r, c])),
                    $"threshold {threshold}, outliers {withOutliers}: y[{r}, {c}] = {actual[r, c]:R}, bnb {expected[r, c]:R}");
    }

    [Fact]
    public void OutlierColumnsKeepTheirPrecision()
    {
        using var scope = NewDisposeScope();
        var (w, b, x) = Data(32, 64, 6, 13);
        x.select(1, 3).mul_(40);                                                // one systematic outlier feature
        var exact = nn.functional.linear(x, w, b);
        double Error(double threshold)
        {
            using var layer = new Linear8bit(w, b, threshold: threshold);
            layer.eval();
            return ((layer.forward(x) - exact).norm() / exact.norm()).item<float>();
        }
        double with = Error(6.0), without = Error(0.0);
        Assert.True(with < without / 3, $"relative error with decomposition {with:G3}, without {without:G3}");
    }

    [Fact]
    public void TrainingOnCpuIsBnbMatmul8bitFpAndInputGradientsFlow()
    {
        using var scope = NewDisposeScope();
        var (w, b, x) = Data(16, 48, 5, 3);
        using var layer = new Linear8bit(w, b, threshold: 6.0);
        var wFp = layer.weight.to_type(ScalarType.Float32) * (layer.SCB * 7.874015718698502e-3f).unsqueeze(1);   // CB · (SCB / 127)
        layer.train();
        TensorAssert.Close(nn.functional.linear(x, wFp, b), layer.forward(x), 0, what: "MatMul8bitFp");
        layer.eval();
        var xi = x.detach().requires_grad_(true);
        var y = layer.forward(xi);
        using (no_grad()) TensorAssert.Close(layer.forward(x), y, 0, what: "same value with autograd");
        var g = randn_like(y);
        y.backward([g]);
        TensorAssert.Close(g.matmul(wFp), xi.grad!, 1e-6, what: "input gradient (bnb's backward: grad · dequantised CB)");
        Assert.Null(layer.weight.grad);
    }

    [Fact]
    public void InvalidThresholdIsRefused()
    {
        using var scope = NewDisposeScope();
        var (w, b, _) = Data(4, 8, 1, 1);
        var e = Assert.Throws<ArgumentException>(() => new Linear8bit(w, b, threshold: -1));
        Assert.Contains("-1", e.Message);
        Assert.Throws<ArgumentException>(() => new Linear8bit(w, b, threshold: double.NaN));
    }
}
