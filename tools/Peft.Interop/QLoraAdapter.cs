using Peft.Core;
using Peft.Core.Quantization;
using Peft.Core.Safetensors;
using Peft.Transformers;
using static TorchSharp.torch;

/// <summary>
/// A QLoRA adapter trained in C# on llama-tiny quantized in place (NF4 + double quant, <see cref="QLoraConfig"/>),
/// saved to OUT_DIR/quant/qlora-adapter, plus the logits C# computes with that adapter on the float32 base
/// (OUT_DIR/quant/qlora-expected.safetensors): <c>check_quant.py</c> loads the adapter with PEFT on the float32 base
/// and compares.
/// </summary>
internal static class QLoraAdapter
{
    public static int Write(string modelsDir, string outDir)
    {
        var baseDir = Path.Combine(modelsDir, "llama-tiny");
        var dir = Path.Combine(outDir, "quant", "qlora-adapter");
        using var scope = NewDisposeScope();
        manual_seed(7);
        var ids = randint(0, 900, [2, 10], generator: new Generator(17));
        var mask = ones(2, 10, dtype: ScalarType.Int64);
        var config = new QLoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj"], TaskType = TaskType.CausalLM };
        using (var pm = PeftModel.GetPeftModel(AutoModelForCausalLM.FromPretrained(baseDir), config))
        {
            pm.train();
            var opt = optim.AdamW(pm.parameters().Where(p => p.requires_grad), 2e-2);
            for (int step = 0; step < 4; step++)
            {
                using var s = NewDisposeScope();
                opt.zero_grad();
                pm.forward(new ModelInput { InputIds = ids, AttentionMask = mask, Labels = ids }).Loss!.backward();
                opt.step();
            }
            pm.SavePretrained(dir);
        }
        using var onFp32 = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(baseDir), dir);
        Tensor logits;
        using (no_grad()) logits = onFp32.forward(new ModelInput { InputIds = ids, AttentionMask = mask }).Logits!;
        SafetensorsWriter.Save(Path.Combine(outDir, "quant", "qlora-expected.safetensors"),
            [new("input_ids", ids), new("attention_mask", mask), new("logits", logits.contiguous())],
            new Dictionary<string, string> { ["base"] = "llama-tiny" });
        Console.WriteLine($"wrote the QLoRA adapter to {dir}");
        return 0;
    }
}
