using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Transformers;
using static TorchSharp.torch;

/// <summary>
/// PEFT's <c>autocast_adapter_dtype</c> across the two stacks: a LoRA adapter (q/v/o_proj and the embedding) trained
/// 3 steps in C# on llama-tiny loaded in bfloat16 — float32 adapter weights by default — saved to
/// OUT_DIR/bf16/lora-adapter, with the logits C# computes after loading it back onto a bfloat16 base
/// (OUT_DIR/bf16/expected.safetensors, logits stored as float32). <c>check_python.py</c> loads the adapter with PEFT onto
/// the bfloat16 base: the saved tensors must be F32, PEFT's adapter weights float32 and the base bfloat16, the logits
/// equal up to bfloat16 rounding.
/// </summary>
internal static class Bf16LoraAdapter
{
    public static void Write(string modelsDir, string outDir)
    {
        var baseDir = Path.Combine(modelsDir, "llama-tiny");
        var dir = Path.Combine(outDir, "bf16", "lora-adapter");
        var options = new FromPretrainedOptions { Dtype = ScalarType.BFloat16 };
        using var scope = NewDisposeScope();
        manual_seed(11);
        var ids = randint(3, 900, [2, 10], generator: new Generator(19));
        var mask = ones(2, 10, dtype: ScalarType.Int64);
        var config = new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "v_proj", "o_proj", "embed_tokens"], TaskType = TaskType.CausalLM };
        using (var pm = PeftModel.GetPeftModel(AutoModelForCausalLM.FromPretrained(baseDir, options), config))
        {
            pm.train();
            var opt = optim.AdamW(pm.parameters().Where(p => p.requires_grad), 2e-3);
            for (int step = 0; step < 3; step++)
            {
                using var s = NewDisposeScope();
                opt.zero_grad();
                pm.forward(new ModelInput { InputIds = ids, AttentionMask = mask, Labels = ids }).Loss!.backward();
                opt.step();
            }
            pm.SavePretrained(dir);
        }
        using var loaded = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(baseDir, options), dir);
        Tensor logits;
        using (no_grad()) logits = loaded.forward(new ModelInput { InputIds = ids, AttentionMask = mask }).Logits!;
        SafetensorsWriter.Save(Path.Combine(outDir, "bf16", "expected.safetensors"),
            [new("input_ids", ids), new("attention_mask", mask), new("logits", logits.to(ScalarType.Float32).contiguous())],
            new Dictionary<string, string> { ["base"] = "llama-tiny", ["logits_dtype"] = logits.dtype.ToString() });
        Console.WriteLine($"wrote the bf16-base LoRA adapter to {dir}");
    }
}
