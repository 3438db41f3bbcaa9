// Peft.NET QLoRA: the seed's OPT LoRA demo on a 4-bit NF4 base, plus the memory arithmetic that motivates it.
//
// Python (the seed / PEFT's QLoRA walkthrough)                    C# (below)
//   bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
//                            bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
//   model = AutoModelForCausalLM.from_pretrained(id, quantization_config=bnb)   FromPretrainedOptions.Quantization
//   model.get_memory_footprint()                                                PreTrainedModel.GetMemoryFootprint()
//   model = prepare_model_for_kbit_training(model)                              KbitTraining.PrepareModelForKbitTraining
//   model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
//                                            lora_dropout=0.1, bias="none", task_type="CAUSAL_LM"))
//   Trainer(..., data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False)).train()
//   model.save_pretrained(...); PeftModel.from_pretrained(quantized_base, ...)
//   "OPT-6.7B in fp16 needs ~13 GB; in 4 bits ~4 GB"                            MemoryEstimator (the table)
//
// The base is the small OPT pre-trained here (as in samples/LoraCausalLm), or a real OPT / Llama / Qwen2 folder or
// hub id with --model. NF4 runs on the CPU here (bitsandbytes' format, dequantized per layer in the compute dtype,
// float32 by default on a CPU; bfloat16 on a GPU with --compute-dtype bf16).
//
// Usage: dotnet run --project samples/QLora [-- --out DIR] [--model HF_FOLDER_OR_HUB_ID] [--base-steps N]
//                    [--lora-steps N] [--lr X] [--compute-dtype fp32|bf16] [--smoke]
using System.Diagnostics;
using Peft.Core;
using Peft.Core.Quantization;
using Peft.Datasets;
using Peft.Samples;
using Peft.Transformers;
using QLora;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

var outDir = Path.Combine(Path.GetTempPath(), "peft-qlora");
string? modelId = null;
int baseSteps = 300, loraSteps = 120;
double? lr = null;
var computeDtype = ScalarType.Float32;
bool smoke = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--out": outDir = args[++i]; break;
        case "--model": modelId = args[++i]; break;
        case "--base-steps": baseSteps = int.Parse(args[++i]); break;
        case "--lora-steps": loraSteps = int.Parse(args[++i]); break;
        case "--lr": lr = double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
        case "--compute-dtype":
            computeDtype = args[++i] switch
            {
                "fp32" => ScalarType.Float32, "bf16" => ScalarType.BFloat16,
                var v => throw new ArgumentException($"--compute-dtype: expected fp32 or bf16, got '{v}'"),
            };
            break;
        case "--smoke": smoke = true; break;
        default: throw new ArgumentException($"unknown argument '{args[i]}'");
    }
}
if (smoke) (baseSteps, loraSteps) = (4, 4);
double learningRate = lr ?? (modelId is null ? 2e-3 : 2e-4); // the seed's 2e-4 for a real checkpoint
manual_seed(0);
var total = Stopwatch.StartNew();

// 1. memory: what a 4-bit base saves, from the public configs alone --------------------------------------------
MemoryTables.Print(Path.Combine(AppContext.BaseDirectory, "data", "configs"));

// 2. data and base, as in samples/LoraCausalLm ----------------------------------------------------------------
var (general, domainTrain, domainTest) = CausalLmSteps.ScienceSplit(smoke);
var baseDir = modelId ?? Path.Combine(outDir, "base");
List<IReadOnlyDictionary<string, double>> baseHistory = [];
if (modelId is null) baseHistory = CausalLmSteps.PreTrainSmallOpt(baseDir, general, baseSteps, Path.Combine(outDir, "pretrain-run"));
var tok = AutoTokenizer.FromPretrained(baseDir);

// 3. load in NF4 ----------------------------------------------------------------------------------------------
var bnb = new BitsAndBytesConfig
{
    LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitUseDoubleQuant = true, Bnb4BitComputeDtype = computeDtype,
};
long fp32Bytes;
using (var fp32 = AutoModelForCausalLM.FromPretrained(baseDir)) fp32Bytes = fp32.GetMemoryFootprint();
var model = AutoModelForCausalLM.FromPretrained(baseDir, new FromPretrainedOptions { Quantization = bnb });
long nf4Bytes = model.GetMemoryFootprint();
long estimated = MemoryEstimator.WeightBytes(model.Config, WeightPrecision.Nf4, otherDtype: ScalarType.Float32);
int quantized = model.modules().Count(m => m is IQuantizedLinear);
AnsiConsole.MarkupLine($"[bold]NF4 base[/]  {quantized} linears in NF4 (double quant); get_memory_footprint: fp32 {fp32Bytes:N0} B -> nf4 {nf4Bytes:N0} B " +
                       $"({(double)fp32Bytes / nf4Bytes:F2}x smaller; MemoryEstimator predicted {estimated:N0} B)");
var heldOut = domainTest.Column<string>(CausalLmSteps.TextColumn);
const string Prompt = "Two things are infinite:";
double pplFp32, pplBefore = CausalLmSteps.Perplexity(model, tok, heldOut);
using (var fp32 = AutoModelForCausalLM.FromPretrained(baseDir)) pplFp32 = CausalLmSteps.Perplexity(fp32, tok, heldOut);
string before = CausalLmSteps.Complete(model, tok, Prompt);

// 4. QLoRA: prepare_model_for_kbit_training + the seed's LoRA config --------------------------------------------
KbitTraining.PrepareModelForKbitTraining(model, useGradientCheckpointing: true);
var peft = PeftModel.GetPeftModel(model, new LoraConfig
{
    R = 8, LoraAlpha = 16, TargetModules = ["q_proj", "v_proj"], LoraDropout = 0.1, Bias = LoraBias.None, TaskType = TaskType.CausalLM,
});
AnsiConsole.Markup("[bold]QLoRA[/]  ");
peft.PrintTrainableParameters();
AnsiConsole.MarkupLine($"  fine-tuning on 'science' quotes: {loraSteps} steps, lr {learningRate:G}, gradient checkpointing on");
var sw = Stopwatch.StartNew();
var loraHistory = CausalLmSteps.Train(peft, tok, domainTrain, new TrainingArguments
{
    OutputDir = Path.Combine(outDir, "qlora-run"), MaxSteps = loraSteps, PerDeviceTrainBatchSize = 8, LearningRate = learningRate,
    WarmupSteps = loraSteps / 10, LoggingSteps = Math.Max(1, loraSteps / 20), SaveStrategy = IntervalStrategy.No, ReportTo = ["jsonl"],
});
double loraSeconds = sw.Elapsed.TotalSeconds;
double pplAfter = CausalLmSteps.Perplexity(peft, tok, heldOut);
string after = CausalLmSteps.Complete(model, tok, Prompt);

// 5. save the adapter (an ordinary PEFT LoRA folder), reload it onto a fresh NF4 base, compare -------------------
var adapterDir = Path.Combine(outDir, "adapter");
peft.SavePretrained(adapterDir);
using var reloaded = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(baseDir, new FromPretrainedOptions { Quantization = bnb }), adapterDir);
reloaded.eval();
var probe = heldOut.Take(4).ToList();
double maxDiff = CausalLmSteps.Logits(peft, tok, probe).Zip(CausalLmSteps.Logits(reloaded, tok, probe), (a, b) => Math.Abs((double)a - b)).Max();

var table = new Table().AddColumns("", "perplexity on held-out 'science' quotes", Markup.Escape($"greedy completion of \"{Prompt}\""));
table.AddRow("fp32 base", $"{pplFp32:F2}", "");
table.AddRow("NF4 base", $"{pplBefore:F2}", Markup.Escape(before));
table.AddRow("NF4 base + LoRA (QLoRA)", $"{pplAfter:F2}", Markup.Escape(after));
AnsiConsole.Write(table);
AnsiConsole.MarkupLine($"QLoRA training {loraSeconds:F0} s; adapter reloaded on a fresh NF4 base: max |logit difference| = {maxDiff:G3}");
var png = Path.Combine(outDir, "loss.png");
LossCurve.Write(png, "QLora: training loss", [.. new[] { ("pre-training (fp32)", (IReadOnlyList<IReadOnlyDictionary<string, double>>)baseHistory), ("QLoRA (NF4 base)", loraHistory) }.Where(s => s.Item2.Count > 0)]);
AnsiConsole.MarkupLine($"loss curves: {png}; Trainer logs: {Path.Combine(outDir, "*-run", JsonlLoggerCallback.FileName)}");
WriteSummary(Path.Combine(outDir, "results.json"));
model.Dispose();

if (maxDiff > 1e-4)
{
    AnsiConsole.MarkupLine("[red]the reloaded adapter does not reproduce the trained one[/]");
    return 1;
}
if (!smoke && !(pplAfter < pplBefore))
{
    AnsiConsole.MarkupLine("[red]QLoRA did not lower the perplexity on held-out domain quotes[/]");
    return 1;
}
AnsiConsole.MarkupLine($"[green]done[/] in {total.Elapsed.TotalSeconds:F0} s");
return 0;

void WriteSummary(string path)
{
    var json = System.Text.Json.JsonSerializer.Serialize(new
    {
        smoke, footprint_fp32_bytes = fp32Bytes, footprint_nf4_bytes = nf4Bytes, estimated_nf4_bytes = estimated, quantized_linears = quantized,
        perplexity_fp32 = pplFp32, perplexity_before = pplBefore, perplexity_after = pplAfter, qlora_seconds = loraSeconds,
        reload_max_abs_logit_diff = maxDiff, completion_before = before, completion_after = after, total_seconds = total.Elapsed.TotalSeconds,
    }, new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    File.WriteAllText(path + ".tmp", json);
    File.Move(path + ".tmp", path, overwrite: true);
}
