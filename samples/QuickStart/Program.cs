// Peft.NET quick start: the whole workflow of the PEFT walkthroughs, on a model small enough for a laptop CPU.
//
//  1. data       load quotes.jsonl with Peft.Datasets, keep short quotes, split train / eval, pick a domain subset
//  2. tokenizer  write a byte-level BPE tokenizer.json and load it with AutoTokenizer (no Hub needed)
//  3. base model build a small OPT from a config, pre-train it with the Trainer on all quotes, SavePretrained
//  4. LoRA       reload the base, GetPeftModel(LoraConfig q_proj/v_proj), fine-tune on the domain quotes (Trainer)
//  5. results    perplexity before/after, generation before/after, save the adapter (PEFT's file format),
//                reload it with PeftModel.FromPretrained, merge it into the base, and check all agree;
//                loss curves in loss.png and the Trainer's JSONL logs (log_history.jsonl) in the output folder
//
// Usage: dotnet run --project samples/QuickStart [-- --out DIR] [--base-steps N] [--lora-steps N]
//                                                  [--model HF_FOLDER_OR_HUB_ID] [--smoke]
// --model skips steps 2-3 and runs LoRA on a real causal LM (OPT / Llama / Qwen2 / Mistral: q_proj, v_proj),
// e.g. facebook/opt-125m from the local Hugging Face cache. --smoke runs a few steps of each phase (CI).
using Peft.Core;
using Peft.Datasets;
using Peft.Samples;
using Peft.Transformers;
using QuickStart;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

var outDir = Path.Combine(Path.GetTempPath(), "peft-quickstart");
int baseSteps = 300, loraSteps = 150;
string? modelId = null;
bool smoke = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--out": outDir = args[++i]; break;
        case "--base-steps": baseSteps = int.Parse(args[++i]); break;
        case "--lora-steps": loraSteps = int.Parse(args[++i]); break;
        case "--model": modelId = args[++i]; break;
        case "--smoke": smoke = true; break;
        default: throw new ArgumentException($"unknown argument '{args[i]}'");
    }
}
if (smoke) (baseSteps, loraSteps) = (6, 4);
manual_seed(0);
var timer = System.Diagnostics.Stopwatch.StartNew();

// 1. data ---------------------------------------------------------------------------------------------------
var quotesPath = Path.Combine(AppContext.BaseDirectory, "data", "quotes.jsonl");
var quotes = DatasetLoader.LoadDataset("json", new Dictionary<string, string> { ["train"] = quotesPath })["train"]
    .Filter(row => ((string)row["quote"]!).Length is >= 20 and <= 120);
var split = quotes.TrainTestSplit(testSize: 0.05, seed: 42);
var train = split["train"];
var eval = split["test"];
bool IsDomain(DatasetRow row) => ((IEnumerable<string>)row["tags"]!).Contains("computers");
var domainTrain = train.Filter(IsDomain);
var domainEval = eval.Filter(IsDomain);
AnsiConsole.MarkupLine($"[bold]data[/]  {quotes.NumRows:N0} short quotes: {train.NumRows:N0} train / {eval.NumRows:N0} eval; " +
                       $"domain 'computers': {domainTrain.NumRows:N0} train / {domainEval.NumRows:N0} eval");

// 2. tokenizer ----------------------------------------------------------------------------------------------
var baseDir = modelId ?? Path.Combine(outDir, "base");
PreTrainedTokenizer tok;
List<IReadOnlyDictionary<string, double>> baseHistory = [];
if (modelId is null)
{
    ByteLevelTokenizer.Write(baseDir);
    tok = AutoTokenizer.FromPretrained(baseDir);
    AnsiConsole.MarkupLine($"[bold]tokenizer[/]  byte-level BPE, {ByteLevelTokenizer.VocabSize} tokens; " +
                           Markup.Escape($"'Hi!' -> [{string.Join(", ", tok.Encode("Hi!"))}]"));

    // 3. base model -----------------------------------------------------------------------------------------
    var config = new OPTConfig
    {
        VocabSize = ByteLevelTokenizer.VocabSize, HiddenSize = 128, NumHiddenLayers = 2, NumAttentionHeads = 4, FfnDim = 512,
        MaxPositionEmbeddings = 256, Dropout = 0.0, PadTokenId = ByteLevelTokenizer.PadId,
        BosTokenId = ByteLevelTokenizer.EosId, EosTokenId = [ByteLevelTokenizer.EosId],
    };
    using var model = AutoModelForCausalLM.FromConfig(config);
    AnsiConsole.MarkupLine($"[bold]base model[/]  OPT from config: {model.NumParameters(onlyTrainable: false):N0} parameters");
    baseHistory = Fit(model, train, baseSteps, lr: 3e-3, "pretrain", "pre-training (all weights)");
    model.SavePretrained(baseDir);
}
else
{
    tok = AutoTokenizer.FromPretrained(modelId);
    AnsiConsole.MarkupLine($"[bold]model[/]  {Markup.Escape(modelId)} (no pre-training)");
}

// 4. LoRA ---------------------------------------------------------------------------------------------------
var baseModel = AutoModelForCausalLM.FromPretrained(baseDir);
double pplBefore = Perplexity(baseModel, domainEval.Column<string>("quote"));
var prompt = "Computers are";
string before = Complete(baseModel, prompt);

var peft = PeftModel.GetPeftModel(baseModel, new LoraConfig
{
    R = 8, LoraAlpha = 16, LoraDropout = 0.05, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM,
});
AnsiConsole.Markup("[bold]LoRA[/]  ");
peft.PrintTrainableParameters(); // prints PEFT's exact line
var loraHistory = Fit(peft, domainTrain, loraSteps, lr: modelId is null ? 3e-3 : 2e-4, "lora", "LoRA fine-tuning on 'computers' quotes");
double pplAfter = Perplexity(peft, domainEval.Column<string>("quote"));
string after = Complete(baseModel, prompt); // GetPeftModel injected the adapter into baseModel itself

// 5. results ------------------------------------------------------------------------------------------------
var adapterDir = Path.Combine(outDir, "adapter");
peft.SavePretrained(adapterDir);
var reloaded = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(baseDir), adapterDir);
string afterReload = Complete((PreTrainedModel)reloaded.GetBaseModel(), prompt);
var merged = (PreTrainedModel)reloaded.MergeAndUnload();
string afterMerge = Complete(merged, prompt);

var table = new Table().AddColumns("", "perplexity on held-out 'computers' quotes", $"greedy completion of \"{prompt}\"");
table.AddRow("base model", $"{pplBefore:F2}", Markup.Escape(before));
table.AddRow("with LoRA", $"{pplAfter:F2}", Markup.Escape(after));
table.AddRow("adapter reloaded", "", Markup.Escape(afterReload));
table.AddRow("merged into base", "", Markup.Escape(afterMerge));
AnsiConsole.Write(table);
var png = Path.Combine(outDir, "loss.png");
LossCurve.Write(png, "QuickStart: training loss", [.. new[] { ("pre-training", (IReadOnlyList<IReadOnlyDictionary<string, double>>)baseHistory), ("LoRA", loraHistory) }.Where(s => s.Item2.Count > 0)]);
AnsiConsole.MarkupLine($"loss curves: {png}; Trainer logs: {Path.Combine(outDir, "*-run", JsonlLoggerCallback.FileName)}");
AnsiConsole.MarkupLine($"adapter files (PEFT format): {string.Join(", ", Directory.GetFiles(adapterDir).Select(Path.GetFileName))} in {adapterDir}");
if (!smoke && !(pplAfter < pplBefore)) // a --smoke run trains too few steps to promise it
{
    AnsiConsole.MarkupLine("[red]LoRA fine-tuning did not lower the perplexity on held-out domain quotes[/]");
    return 1;
}
if (after != afterReload || after != afterMerge)
{
    AnsiConsole.MarkupLine("[red]the reloaded or merged adapter does not reproduce the trained one[/]");
    return 1;
}
AnsiConsole.MarkupLine($"[green]done[/] in {timer.Elapsed.TotalSeconds:F0} s");
return 0;

// Helpers -----------------------------------------------------------------------------------------------------

// Trains with the Trainer (HF's loop: AdamW, linear schedule with warmup, batches of 16 padded per batch, labels
// = ids with padding set to -100 by DataCollatorForLanguageModeling(mlm: false)); progress bar on the console,
// log_history.jsonl in outDir/<name>-run. Returns the LogHistory.
List<IReadOnlyDictionary<string, double>> Fit(nn.Module<ModelInput, ModelOutput> model, Dataset texts, int steps, double lr, string name, string what)
{
    AnsiConsole.MarkupLine($"  {what}: {steps} steps");
    var runDir = Path.Combine(outDir, name + "-run");
    if (Directory.Exists(runDir)) Directory.Delete(runDir, recursive: true);
    var data = texts.Map(b => tok.EncodeBatch(b.Column<string>("quote"), truncation: true, maxLength: 128).ToColumns(), batched: true);
    var trainingArgs = new TrainingArguments
    {
        OutputDir = runDir, MaxSteps = steps, PerDeviceTrainBatchSize = 16, LearningRate = lr, WeightDecay = 0.01,
        WarmupSteps = steps / 10, LoggingSteps = Math.Max(1, steps / 25), SaveStrategy = IntervalStrategy.No, ReportTo = ["jsonl"],
    };
    var trainer = new Trainer(model, trainingArgs, trainDataset: data, dataCollator: new DataCollatorForLanguageModeling(tok, mlm: false));
    trainer.Train();
    model.eval();
    var losses = trainer.State.LogHistory.Where(e => e.ContainsKey("loss")).Select(e => e["loss"]).ToList();
    AnsiConsole.MarkupLine($"  loss {losses[0]:F3} -> {losses[^1]:F3} after {steps} steps ({losses.Count} log entries)");
    return trainer.State.LogHistory;
}

// exp(mean token negative log-likelihood) over the texts.
double Perplexity(nn.Module<ModelInput, ModelOutput> model, IReadOnlyList<string> texts)
{
    using var noGrad = no_grad();
    double nll = 0;
    long tokens = 0;
    foreach (var chunk in texts.Chunk(32))
    {
        using var scope = NewDisposeScope();
        using var enc = tok.EncodeBatch(chunk, padding: true, truncation: true, maxLength: 128);
        var labels = enc.InputIds.masked_fill(enc.AttentionMask.eq(0), -100);
        var output = model.forward(new ModelInput { InputIds = enc.InputIds, AttentionMask = enc.AttentionMask, Labels = labels });
        long n = labels.narrow(1, 1, labels.shape[1] - 1).ne(-100).sum().item<long>();
        nll += output.Loss!.item<float>() * n;
        tokens += n;
    }
    return Math.Exp(nll / tokens);
}

string Complete(PreTrainedModel model, string text)
{
    using var scope = NewDisposeScope();
    var ids = tensor(tok.Encode(text).Select(i => (long)i).ToArray()).unsqueeze(0);
    var output = model.Generate(ids, ones_like(ids), new GenerationConfig { MaxNewTokens = 40, DoSample = false, RepetitionPenalty = 1.2 });
    return tok.Decode(output[0].data<long>().Select(i => (int)i), skipSpecialTokens: true);
}
