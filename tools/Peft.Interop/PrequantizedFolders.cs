using Peft.Core.Quantization;
using Peft.Core.Safetensors;
using Peft.Transformers;
using static TorchSharp.torch;

/// <summary>
/// Fixture models loaded quantised and saved with <c>SavePretrained</c> (bnb's serialised layout + HF's
/// <c>quantization_config</c>) to OUT_DIR/quant/prequantized/NAME-MODE, with Peft.NET's dequantised weight of every
/// quantised layer ([out, in] float32) in dequant.safetensors beside each folder: <c>check_quant.py</c> reads the
/// folders as transformers + bnb would (config, packed quant_state, nested absmax) with its port and compares.
/// </summary>
internal static class PrequantizedFolders
{
    private static readonly (string Name, ModelTask Task, string Mode, BitsAndBytesConfig Config)[] Cases =
    [
        ("llama-tiny", ModelTask.CausalLM, "nf4-dq", new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitUseDoubleQuant = true }),
        ("gpt2-tiny", ModelTask.CausalLM, "fp4", new BitsAndBytesConfig { LoadIn4Bit = true }),
        ("bert-tiny", ModelTask.SequenceClassification, "nf4-bf16", new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitComputeDtype = ScalarType.BFloat16, LlmInt8SkipModules = ["classifier", "pooler"] }),
        ("qwen2-tiny", ModelTask.CausalLM, "int8", new BitsAndBytesConfig { LoadIn8Bit = true }),
    ];

    public static int Write(string modelsDir, string outDir)
    {
        foreach (var (name, task, mode, config) in Cases)
        {
            var src = Path.Combine(modelsDir, name);
            if (!Directory.Exists(src)) { Console.WriteLine($"skip prequantized {name}: not in {modelsDir}"); continue; }
            var dir = Path.Combine(outDir, "quant", "prequantized", $"{name}-{mode}");
            using var scope = NewDisposeScope();
            using var model = ModelFactory.FromPretrained(src, task, new FromPretrainedOptions { Quantization = config });
            model.SavePretrained(dir);
            var deq = model.named_modules().Where(nm => nm.module is IQuantizedLinear)
                .Select(nm => new KeyValuePair<string, Tensor>(nm.name, ((IQuantizedLinear)nm.module).DequantizeWeight(ScalarType.Float32).contiguous()))
                .ToList();
            SafetensorsWriter.Save(Path.Combine(outDir, "quant", "prequantized", $"{name}-{mode}.dequant.safetensors"), deq,
                new Dictionary<string, string> { ["source"] = name });
            Console.WriteLine($"wrote {dir} ({deq.Count} quantized layers)");
        }
        return 0;
    }
}
