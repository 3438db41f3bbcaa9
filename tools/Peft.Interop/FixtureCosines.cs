using System.Text.Json;
using Peft.Core;
using Peft.Core.Quantization;
using Peft.Core.Safetensors;
using Peft.Transformers;
using static TorchSharp.torch;

/// <summary>
/// The fixture models loaded with bitsandbytes configs (int8, HF's default fp4, nf4, nf4 + double quant): the
/// quantised modules, logits on fixed random inputs and their cosine to the float32 logits, written to
/// OUT_DIR/quant/fixture-cosines.{json,safetensors}. <c>check_quant.py</c> rebuilds each case with transformers'
/// own module selection and a Python port of bnb's rounding, and compares module list, logits and cosine.
/// </summary>
internal static class FixtureCosines
{
    private static readonly (string Name, ModelTask Task)[] Models =
    [
        ("llama-tiny", ModelTask.CausalLM), ("qwen2-tiny", ModelTask.CausalLM), ("opt-tiny", ModelTask.CausalLM),
        ("gpt2-tiny", ModelTask.CausalLM), ("bert-tiny", ModelTask.SequenceClassification),
        ("bert-ner-tiny", ModelTask.TokenClassification), ("bert-qa-tiny", ModelTask.QuestionAnswering),
    ];

    private static readonly (string Mode, BitsAndBytesConfig Config)[] Modes =
    [
        ("int8", new BitsAndBytesConfig { LoadIn8Bit = true }),
        ("hf-default", new BitsAndBytesConfig { LoadIn4Bit = true }),
        ("nf4", new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4" }),
        ("nf4-dq", new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitUseDoubleQuant = true }),
    ];

    public static int Write(string modelsDir, string outDir)
    {
        var dir = Path.Combine(outDir, "quant");
        Directory.CreateDirectory(dir);
        using var scope = NewDisposeScope();
        var tensors = new List<KeyValuePair<string, Tensor>>();
        var report = new Dictionary<string, object>();
        foreach (var (name, task) in Models)
        {
            var path = Path.Combine(modelsDir, name);
            if (!Directory.Exists(path)) { Console.WriteLine($"skip {name}: not in {modelsDir}"); continue; }
            var ids = randint(5, 200, [2, 12], generator: new Generator(41));
            var mask = ones(2, 12, dtype: ScalarType.Int64);
            mask[1, TensorIndex.Slice(9)] = 0;                                            // a right-padded row
            // token_type_ids only where the tokenizer produces them (BERT): GPT-2 adds wte(token_type_ids) to its
            // embeddings when they are given, as HF's GPT2Model does, so zeros there would change its logits.
            var tokenTypes = name.StartsWith("bert", StringComparison.Ordinal) ? zeros_like(ids) : null;
            var input = new ModelInput { InputIds = ids, AttentionMask = mask, TokenTypeIds = tokenTypes };
            tensors.Add(new($"{name}.input_ids", ids));
            tensors.Add(new($"{name}.attention_mask", mask));
            if (tokenTypes is not null) tensors.Add(new($"{name}.token_type_ids", tokenTypes));
            Tensor reference;
            using (var f = ModelFactory.FromPretrained(path, task))
            using (no_grad()) reference = Logits(f.forward(input));
            var modes = new Dictionary<string, object>();
            foreach (var (mode, config) in Modes)
            {
                using var q = ModelFactory.FromPretrained(path, task, new FromPretrainedOptions { Quantization = config });
                Tensor logits;
                using (no_grad()) logits = Logits(q.forward(input));
                tensors.Add(new($"{name}.{mode}.logits", logits.contiguous()));
                var targets = q.named_modules().Where(nm => nm.module is IQuantizedLinear).Select(nm => nm.name).Order(StringComparer.Ordinal).ToList();
                double cos = Cosine(reference, logits, mask), all = Cosine(reference, logits, null);
                var entry = new Dictionary<string, object> { ["cosine"] = cos, ["cosine_all_positions"] = all, ["modules"] = targets };
                if (config.LoadIn8Bit) entry["llm_int8_threshold"] = config.LlmInt8Threshold;
                modes[mode] = entry;
                Console.WriteLine($"{name} {mode}: cosine {cos:F5} (all positions {all:F5}; {targets.Count} quantized modules)");
            }
            report[name] = modes;
        }
        SafetensorsWriter.Save(Path.Combine(dir, "fixture-cosines.safetensors"), tensors, new Dictionary<string, string> { ["what"] = "fixture cosines" });
        File.WriteAllText(Path.Combine(dir, "fixture-cosines.json"), JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    private static Tensor Logits(ModelOutput o) => o.Logits ?? cat([o.StartLogits!, o.EndLogits!], -1);

    /// <summary>Cosine of the flattened logits: over unpadded positions for per-token logits [B, T, V] when <paramref name="mask"/> is given, over everything otherwise.</summary>
    private static double Cosine(Tensor a, Tensor b, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        if (a.dim() == 3 && mask is not null)
        {
            var m = mask.to_type(ScalarType.Bool).unsqueeze(-1).expand_as(a);
            (a, b) = (a.masked_select(m), b.masked_select(m));
        }
        return nn.functional.cosine_similarity(a.reshape(-1).to_type(ScalarType.Float64), b.reshape(-1).to_type(ScalarType.Float64), 0).item<double>();
    }
}
