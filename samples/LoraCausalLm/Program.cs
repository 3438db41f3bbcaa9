// Peft.NET LoRA on a causal LM: the seed's OPT demo (PEFT's "LoRA on OPT with the Trainer" walkthrough) in C#.
//
// Python (the seed)                                              C# (below)
//   model = AutoModelForCausalLM.from_pretrained("facebook/opt-...")   AutoModelForCausalLM.FromPretrained(baseDir)
//   config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
//                       lora_dropout=0.1, bias="none", task_type="CAUSAL_LM")   new LoraConfig { ... }
//   model = get_peft_model(model, config)                                  PeftModel.GetPeftModel(model, config)
//   data = data.map(lambda s: tokenizer(s["quote"]), batched=True)         CausalLmSteps.Train (Dataset.Map)
//   Trainer(model, train_dataset=data, args=TrainingArguments(learning_rate=2e-4, ...),
//           data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False)).train()
//   model.generate(**tokenizer("Two things are infinite:", ...))            CausalLmSteps.Complete
//   model.save_pretrained("outputs"); PeftModel.from_pretrained(base, "outputs")
//
// No OPT checkpoint is reachable offline, so by default the base is a small OPT built from a config and briefly
// pre-trained here on the general quotes (CausalLmSteps.PreTrainSmallOpt); LoRA then adapts it to the held-out
// 'science' quotes, and the sample prints perplexity on unseen science quotes before and after, the generations,
// and checks that the saved adapter reloads onto a fresh base with the same logits.
//
// Usage: dotnet run --project samples/LoraCausalLm [-- --out DIR] [--model HF_OPT_FOLDER_OR_HUB_ID]
//                    [--base-steps N] [--lora-steps N] [--lr X] [--smoke]
// --model runs LoRA on a real OPT checkpoint (e.g. facebook/opt-125m in the local HF cache) with the seed's lr 2e-4.
// The small base learns slowly at 2e-4, so the default run uses lr 2e-3 for it (printed).
using System.Diagnostics;
using Peft.Core;
using Peft.Datasets;
using Peft.Samples;
using Peft.Transformers;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

var outDir = Path.Combine(Path.GetTempPath(), "peft-loracausallm");
string? modelId = null;
int baseSteps = 300, loraSteps = 120;
double? lr = null;
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
        case "--smoke": smoke = true; break;
        default: throw new ArgumentException($"unknown argument '{args[i]}'");
    }
}
if (smoke) (baseSteps, loraSteps) = (4, 4);
double learningRate = lr ?? (modelId is null ? 2e-3 : 2e-4); // the seed's 2e-4 for a real checkpoint
manual_seed(0);
var total = Stopwatch.StartNew();

// data: quotes.jsonl (the english_quotes stand-in), short quotes; 'science' quotes are the fine-tuning domain -------
var (general, domainTrain, domainTest) = CausalLmSteps.ScienceSplit(smoke);

// base model -------------------------------------------------------------------------------------------------
var baseDir = modelId ?? Path.Combine(outDir, "base");
List<IReadOnlyDictionary<string, double>> baseHistory = [];
if (modelId is null) baseHistory = CausalLmSteps.PreTrainSmallOpt(baseDir, general, baseSteps, Path.Combine(outDir, "pretrain-run"));
var tok = AutoTokenizer.FromPretrained(baseDir);
var model = AutoModelForCausalLM.FromPretrained(baseDir);
var heldOut = domainTest.Column<string>(CausalLmSteps.TextColumn);
const string Prompt = "Two things are infinite:"; // the seed's prompt
double pplBefore = CausalLmSteps.Perplexity(model, tok, heldOut);
string before = CausalLmSteps.Complete(model, tok, Prompt);

// LoRA: the seed's config, verbatim ----------------------------------------------------------------------------
var config = new LoraConfig
{
    R = 8, LoraAlpha = 16, TargetModules = ["q_proj", "v_proj"], LoraDropout = 0.1, Bias = LoraBias.None, TaskType = TaskType.CausalLM,
};
var peft = PeftModel.GetPeftModel(model, config);
AnsiConsole.Markup("[bold]LoRA[/]  ");
peft.PrintTrainableParameters();
AnsiConsole.MarkupLine($"  fine-tuning on 'science' quotes: {loraSteps} steps, lr {learningRate:G}");
var sw = Stopwatch.StartNew();
var loraHistory = CausalLmSteps.Train(peft, tok, domainTrain, new TrainingArguments
{
    OutputDir = Path.Combine(outDir, "lora-run"), MaxSteps = loraSteps, PerDeviceTrainBatchSize = 8, LearningRate = learningRate,
    WarmupSteps = loraSteps / 10, LoggingSteps = Math.Max(1, loraSteps / 20), SaveStrategy = IntervalStrategy.No, ReportTo = ["jsonl"],
});
double loraSeconds = sw.Elapsed.TotalSeconds;
double pplAfter = CausalLmSteps.Perplexity(peft, tok, heldOut);
string after = CausalLmSteps.Complete(model, tok, Prompt); // GetPeftModel injected the adapter into `model` itself

// save, reload onto a fresh base, compare -----------------------------------------------------------------------
var adapterDir = Path.Combine(outDir, "adapter");
peft.SavePretrained(adapterDir);
using var reloaded = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(baseDir), adapterDir);
reloaded.eval();
var probe = heldOut.Take(4).ToList();
var trainedLogits = CausalLmSteps.Logits(peft, tok, probe);
var reloadedLogits = CausalLmSteps.Logits(reloaded, tok, probe);
double maxDiff = trainedLogits.Zip(reloadedLogits, (a, b) => Math.Abs((double)a - b)).Max();
string afterReload = CausalLmSteps.Complete((PreTrainedModel)reloaded.GetBaseModel(), tok, Prompt);

var table = new Table().AddColumns("", "perplexity on held-out 'science' quotes", Markup.Escape($"greedy completion of \"{Prompt}\""));
table.AddRow("base model", $"{pplBefore:F2}", Markup.Escape(before));
table.AddRow("with LoRA", $"{pplAfter:F2}", Markup.Escape(after));
table.AddRow("adapter reloaded", "", Markup.Escape(afterReload));
AnsiConsole.Write(table);
AnsiConsole.MarkupLine($"LoRA training {loraSeconds:F0} s; reloaded adapter vs trained: max |logit difference| = {maxDiff:G3}");
var png = Path.Combine(outDir, "loss.png");
LossCurve.Write(png, "LoraCausalLm: training loss", [.. new[] { ("pre-training", (IReadOnlyList<IReadOnlyDictionary<string, double>>)baseHistory), ("LoRA", loraHistory) }.Where(s => s.Item2.Count > 0)]);
AnsiConsole.MarkupLine($"loss curves: {png}; Trainer logs: {Path.Combine(outDir, "*-run", JsonlLoggerCallback.FileName)}");
AnsiConsole.MarkupLine($"adapter files (PEFT format): {string.Join(", ", Directory.GetFiles(adapterDir).Select(Path.GetFileName))}");
WriteSummary(Path.Combine(outDir, "results.json"));
model.Dispose();

if (maxDiff > 1e-4 || after != afterReload)
{
    AnsiConsole.MarkupLine("[red]the reloaded adapter does not reproduce the trained one[/]");
    return 1;
}
if (!smoke && !(pplAfter < pplBefore)) // a --smoke run trains too few steps to promise it
{
    AnsiConsole.MarkupLine("[red]LoRA did not lower the perplexity on held-out domain quotes[/]");
    return 1;
}
AnsiConsole.MarkupLine($"[green]done[/] in {total.Elapsed.TotalSeconds:F0} s");
return 0;

void WriteSummary(string path)
{
    var json = System.Text.Json.JsonSerializer.Serialize(new
    {
        smoke, perplexity_before = pplBefore, perplexity_after = pplAfter, lora_seconds = loraSeconds, reload_max_abs_logit_diff = maxDiff,
        completion_before = before, completion_after = after, completion_reloaded = afterReload,
        total_seconds = total.Elapsed.TotalSeconds,
    }, new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    File.WriteAllText(path + ".tmp", json);
    File.Move(path + ".tmp", path, overwrite: true);
}
