using Peft.Core.Quantization;
using Peft.Core.Safetensors;
using static TorchSharp.torch;

/// <summary>
/// Writes Peft.NET's 4-bit quantisation of fixed random tensors (inputs, packed codes, absmax, nested state,
/// dequantised values) to OUT_DIR/quant/vectors.safetensors, for <c>check_quant.py</c> to recompute with a Python
/// port of bitsandbytes' algorithm (bnb itself is CUDA-only) and compare bit for bit.
/// </summary>
internal static class QuantVectors
{
    private static readonly (string Name, long[] Shape, ScalarType Dtype, string Type, int Blocksize, bool Double, double Scale)[] Cases =
    [
        ("nf4_f32_64", [96, 160], ScalarType.Float32, "nf4", 64, false, 0.02),
        ("nf4_f32_64_dq", [256, 384], ScalarType.Float32, "nf4", 64, true, 0.05),
        ("nf4_bf16_128_dq", [130, 200], ScalarType.BFloat16, "nf4", 128, true, 1.0),
        ("nf4_f16_32", [33, 65], ScalarType.Float16, "nf4", 32, false, 3.0),
        ("fp4_f32_64", [96, 160], ScalarType.Float32, "fp4", 64, false, 0.02),
        ("fp4_f32_256_dq", [512, 300], ScalarType.Float32, "fp4", 256, true, 0.3),
        ("nf4_f32_4096_odd", [7, 1001], ScalarType.Float32, "nf4", 4096, false, 1.0),
    ];

    /// <summary>LLM.int8 cases: weight [out, in], input rows, outlier threshold, injected outliers.</summary>
    private static readonly (string Name, long Out, long In, long Rows, double Threshold, bool Outliers)[] Int8Cases =
    [
        ("int8_t0", 48, 96, 10, 0.0, false),
        ("int8_t6", 48, 96, 10, 6.0, true),
        ("int8_t6_wide", 130, 300, 7, 6.0, true),
    ];

    public static int Write(string outDir)
    {
        var dir = Path.Combine(outDir, "quant");
        Directory.CreateDirectory(dir);
        using var scope = NewDisposeScope();
        var gen = new Generator(20261130);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var c in Cases)
        {
            var x = (randn(c.Shape, generator: gen) * c.Scale).to_type(c.Dtype);
            // a few exact zeros and an all-zero row exercise the NaN (0 · 1/0) path
            x[0].zero_();
            var (packed, state) = FourBitCodec.Quantize(x, FourBitFormat.FromName(c.Type), c.Blocksize, c.Double);
            using (state)
            {
                var back = FourBitCodec.Dequantize(packed, state, c.Dtype);
                tensors.Add(new($"{c.Name}.input", x.contiguous()));
                tensors.Add(new($"{c.Name}.packed", packed.contiguous()));
                tensors.Add(new($"{c.Name}.absmax", state.Absmax.clone()));
                tensors.Add(new($"{c.Name}.dequant", back.contiguous()));
                if (state.Nested is { } n)
                {
                    tensors.Add(new($"{c.Name}.nested_absmax", n.Absmax.clone()));
                    tensors.Add(new($"{c.Name}.nested_offset", tensor(new[] { n.Offset })));
                    tensors.Add(new($"{c.Name}.nested_quant_map", n.Code.clone()));
                }
            }
        }
        foreach (var c in Int8Cases)
        {
            // Linear8bit in evaluation (bnb MatMul8bitLt): CB / SCB of the weight and the layer's output
            var w = randn([c.Out, c.In], generator: gen) * 0.2;
            var b = randn([c.Out], generator: gen) * 0.1;
            var x = randn([c.Rows, c.In], generator: gen) * 2.0;
            if (c.Outliers)
            {
                x[1, 3] = tensor(11.5f);
                x[4, 7] = tensor(-6.0f);                                           // exactly at the threshold (≥ counts)
                x.select(1, 20).mul_(8);                                            // a systematic outlier feature
            }
            x[c.Rows - 1].zero_();                                                  // a zero row: absmax 0
            using var layer = new Linear8bit(w, b, threshold: c.Threshold);
            layer.eval();
            Tensor y;
            using (no_grad()) y = layer.forward(x);
            tensors.Add(new($"{c.Name}.weight", w.contiguous()));
            tensors.Add(new($"{c.Name}.bias", b.contiguous()));
            tensors.Add(new($"{c.Name}.input", x.contiguous()));
            tensors.Add(new($"{c.Name}.CB", layer.weight.detach().clone()));
            tensors.Add(new($"{c.Name}.SCB", layer.SCB.clone()));
            tensors.Add(new($"{c.Name}.output", y.contiguous()));
        }
        var meta = new Dictionary<string, string>
        {
            ["cases"] = string.Join(";", Cases.Select(c => $"{c.Name},{c.Type},{c.Blocksize},{(c.Double ? 1 : 0)}")),
            ["int8_cases"] = string.Join(";", Int8Cases.Select(c => $"{c.Name},{c.Threshold.ToString(System.Globalization.CultureInfo.InvariantCulture)}")),
        };
        SafetensorsWriter.Save(Path.Combine(dir, "vectors.safetensors"), tensors, meta);
        Console.WriteLine($"wrote {tensors.Count} tensors for {Cases.Length} 4-bit and {Int8Cases.Length} int8 cases to {dir}");
        return 0;
    }
}
