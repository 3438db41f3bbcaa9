// Peft.NET quick start: the whole workflow of the PEFT walkthroughs, on a model small enough for a laptop CPU.
//
//  1. data       load quotes.jsonl with Peft.Datasets, keep short quotes, split train / eval, pick a domain subset
//  2. tokenizer  train a word-level tokenizer on the train quotes, save tokenizer.json, load it with AutoTokenizer
//                (Python: tokenizers.Tokenizer(WordLevel(unk_token="<unk>")).train_from_iterator(...); no Hub needed)
//  3. base model build a small OPT from a config, pre-train it with the Trainer on all quotes, SavePretrained
//  4. LoRA       reload the base, GetPeftModel(LoraConfig q_proj/v_proj), fine-tune on the domain quotes (Trainer)
//  5. results    perplexity before/after, generation before/after, save the adapter (PEFT's file format),
//                reload it with PeftModel.FromPretrained, merge it into the base, and check all agree (same
//                completion, logits within 1e-4); results.json with the numbers and texts;
//                loss curves in loss.png and the Trainer's JSONL logs (log_history.jsonl) in the output folder
//
// Usage: dotnet run --project samples/QuickStart [-- --out DIR] [--base-steps N] [--lora-steps N] [--vocab N]
//                                                  [--model HF_FOLDER_OR_HUB_ID] [--smoke]
// --model skips steps 2-3 and runs LoRA on a real causal LM (OPT / Llama / Qwen2 / Mistral: q_proj, v_proj),
// e.g. facebook/opt-125m: a folder, else a hub id taken from the local Hugging Face cache or downloaded into it
// (Python: AutoModelForCausalLM.from_pretrained("facebook/opt-125m")) with a console progress bar per file.
// --smoke runs a few steps of each phase (CI).
using Peft.Core;
using Peft.Datasets;
using Peft.Samples;
using Peft.Transformers;
using Peft.Transformers.Hub;
using QuickStart;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

var outDir = Path.Combine(Path.GetTempPath(), "peft-quickstart");
int baseSteps = 500, loraSteps = 150, vocabSize = 3000;
double baseLr = 1e-2;
string? modelId = null;
bool smoke = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--out": outDir = args[++i]; break;
        case "--base-steps": baseSteps = int.Parse(args[++i]); break;
        case "--lora-steps": loraSteps = int.Parse(args[++i]); break;
        case "--base-lr": baseLr = double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
        case "--vocab": vocabSize = int.Parse(args[++i]); break;
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
var baseDir = modelId is null ? Path.Combine(outDir, "base") : LocalModelDir(modelId);
PreTrainedTokenizer tok;
List<IReadOnlyDictionary<string, double>> baseHistory = [];
if (modelId is null)
{
    int vocab = WordLevelTokenizer.Train(train.Column<string>("quote"), vocabSize, baseDir);
    tok = AutoTokenizer.FromPretrained(baseDir);
    AnsiConsole.MarkupLine($"[bold]tokenizer[/]  word-level, {vocab:N0} tokens trained on the train quotes; " +
                           Markup.Escape($"'Computers are fast.' -> [{string.Join(", ", tok.Encode("Computers are fast."))}]"));

    // 3. base model -----------------------------------------------------------------------------------------
    // Python: OPTForCausalLM(OPTConfig(vocab_size=..., hidden_size=128, num_hidden_layers=2, ...))
    var config = new OPTConfig
    {
        VocabSize = vocab, HiddenSize = 128, NumHiddenLayers = 2, NumAttentionHeads = 4, FfnDim = 512,
        MaxPositionEmbeddings = 256, Dropout = 0.0, PadTokenId = WordLevelTokenizer.PadId,
        BosTokenId = WordLevelTokenizer.EosId, EosTokenId = [WordLevelTokenizer.EosId],
    };
    using var model = AutoModelForCausalLM.FromConfig(config);
    AnsiConsole.MarkupLine($"[bold]base model[/]  OPT from config: {model.NumParameters(onlyTrainable: false):N0} parameters");
    baseHistory = Fit(model, train, baseSteps, lr: baseLr, batchSize: 32, "pretrain", "pre-training (all weights)");
    model.SavePretrained(baseDir);
}
else
{
    tok = AutoTokenizer.FromPretrained(baseDir);
    AnsiConsole.MarkupLine($"[bold]model[/]  {Markup.Escape(modelId)} (no pre-training): {Markup.Escape(baseDir)}");
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
var loraHistory = Fit(peft, domainTrain, loraSteps, lr: modelId is null ? 1e-2 : 2e-4, batchSize: 16, "lora", "LoRA fine-tuning on 'computers' quotes");
double pplAfter = Perplexity(peft, domainEval.Column<string>("quote"));
string after = Complete(baseModel, prompt); // GetPeftModel injected the adapter into baseModel itself

// 5. results ------------------------------------------------------------------------------------------------
var adapterDir = Path.Combine(outDir, "adapter");
peft.SavePretrained(adapterDir);
using var trainedLogits = Logits(peft);
var reloaded = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(baseDir), adapterDir); // Python: PeftModel.from_pretrained
string afterReload = Complete((PreTrainedModel)reloaded.GetBaseModel(), prompt);
double reloadDiff = MaxDiff(trainedLogits, reloaded);
var merged = (PreTrainedModel)reloaded.MergeAndUnload();                                            // Python: merge_and_unload()
string afterMerge = Complete(merged, prompt);
double mergeDiff = MaxDiff(trainedLogits, merged);

var table = new Table().AddColumns("", "perplexity on held-out 'computers' quotes", $"completion of \"{prompt}\" (top-k sampling, seed 7)");
table.AddRow("base model", $"{pplBefore:F2}", Markup.Escape(before));
table.AddRow("with LoRA", $"{pplAfter:F2}", Markup.Escape(after));
table.AddRow("adapter reloaded", "", Markup.Escape(afterReload));
table.AddRow("merged into base", "", Markup.Escape(afterMerge));
AnsiConsole.Write(table);
AnsiConsole.MarkupLine($"max |logit difference| to the trained adapter: reloaded {reloadDiff:E1}, merged {mergeDiff:E1}");
var results = new System.Text.Json.Nodes.JsonObject
{
    ["model"] = modelId ?? "OPT from config", ["perplexity_before"] = pplBefore, ["perplexity_after"] = pplAfter,
    ["completion_before"] = before, ["completion_after"] = after, ["completion_reloaded"] = afterReload,
    ["completion_merged"] = afterMerge, ["max_logit_diff_reloaded"] = reloadDiff, ["max_logit_diff_merged"] = mergeDiff,
    ["seconds"] = timer.Elapsed.TotalSeconds,
};
var resultsPath = Path.Combine(outDir, "results.json");
File.WriteAllText(resultsPath + ".tmp", results.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
File.Move(resultsPath + ".tmp", resultsPath, overwrite: true);
var png = Path.Combine(outDir, "loss.png");
LossCurve.Write(png, "QuickStart: training loss", [.. new[] { ("pre-training", (IReadOnlyList<IReadOnlyDictionary<string, double>>)baseHistory), ("LoRA", loraHistory) }.Where(s => s.Item2.Count > 0)]);
AnsiConsole.MarkupLine($"loss curves: {png}; Trainer logs: {Path.Combine(outDir, "*-run", JsonlLoggerCallback.FileName)}");
AnsiConsole.MarkupLine($"adapter files (PEFT format): {string.Join(", ", Directory.GetFiles(adapterDir).Select(Path.GetFileName))} in {adapterDir}");
if (!smoke && !(pplAfter < pplBefore)) // a --smoke run trains too few steps to promise it
{
    AnsiConsole.MarkupLine("[red]LoRA fine-tuning did not lower the perplexity on held-out domain quotes[/]");
    return 1;
}
if (after != afterReload || after != afterMerge || !(reloadDiff < 1e-4) || !(mergeDiff < 1e-4))
{
    AnsiConsole.MarkupLine("[red]the reloaded or merged adapter does not reproduce the trained one[/]");
    return 1;
}
AnsiConsole.MarkupLine($"[green]done[/] in {timer.Elapsed.TotalSeconds:F0} s");
return 0;

// Helpers -----------------------------------------------------------------------------------------------------

// Trains with the Trainer (HF's loop: AdamW, linear schedule with warmup, batches padded per batch, labels = ids with
// padding set to -100 by DataCollatorForLanguageModeling(mlm: false), and <unk> too for the word-level tokenizer);
// progress bar on the console,
// log_history.jsonl in outDir/<name>-run. Returns the LogHistory.
List<IReadOnlyDictionary<string, double>> Fit(nn.Module<ModelInput, ModelOutput> model, Dataset texts, int steps, double lr, int batchSize, string name, string what)
{
    AnsiConsole.MarkupLine($"  {what}: {steps} steps");
    var runDir = Path.Combine(outDir, name + "-run");
    if (Directory.Exists(runDir)) Directory.Delete(runDir, recursive: true);
    var data = texts.Map(b => tok.EncodeBatch(b.Column<string>("quote"), truncation: true, maxLength: 128).ToColumns(), batched: true);
    var trainingArgs = new TrainingArguments
    {
        OutputDir = runDir, MaxSteps = steps, PerDeviceTrainBatchSize = batchSize, LearningRate = lr, WeightDecay = 0.01,
        WarmupSteps = steps / 10, LoggingSteps = Math.Max(1, steps / 25), SaveStrategy = IntervalStrategy.No, ReportTo = ["jsonl"],
    };
    IDataCollator collator = new DataCollatorForLanguageModeling(tok, mlm: false);
    if (modelId is null) collator = new IgnoreUnknownLabels(collator, WordLevelTokenizer.UnkId);
    var trainer = new Trainer(model, trainingArgs, trainDataset: data, dataCollator: collator);
    trainer.Train();
    model.eval();
    var losses = trainer.State.LogHistory.Where(e => e.ContainsKey("loss")).Select(e => e["loss"]).ToList();
    AnsiConsole.MarkupLine($"  loss {losses[0]:F3} -> {losses[^1]:F3} after {steps} steps ({losses.Count} log entries)");
    return trainer.State.LogHistory;
}

// exp(mean token negative log-likelihood) over the texts (known words only for the word-level tokenizer).
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
        if (modelId is null) labels = labels.masked_fill(labels.eq(WordLevelTokenizer.UnkId), -100); // as in training
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
    // Python: torch.manual_seed(7); model.generate(ids, max_new_tokens=20, do_sample=True, top_k=10, temperature=0.6,
    //                                             repetition_penalty=1.2, no_repeat_ngram_size=3)
    // Sampling with a fixed seed: the same text on every run, so the reloaded and merged adapters must reproduce it.
    var output = model.Generate(ids, ones_like(ids), new GenerationConfig
    {
        MaxNewTokens = 20, DoSample = true, TopK = 10, Temperature = 0.6, RepetitionPenalty = 1.2, NoRepeatNgramSize = 3, Seed = 7,
    });
    return tok.Decode(output[0].data<long>().Select(i => (int)i), skipSpecialTokens: true);
}

// Logits [2, T, V] of two fixed sentences, detached, owned by the caller.
Tensor Logits(nn.Module<ModelInput, ModelOutput> model)
{
    using var scope = NewDisposeScope();
    using var noGrad = no_grad();
    using var enc = tok.EncodeBatch(["Computers are useless.", "They can only give you answers."], padding: true);
    return model.forward(new ModelInput { InputIds = enc.InputIds, AttentionMask = enc.AttentionMask }).Logits!.detach().MoveToOuterDisposeScope();
}

double MaxDiff(Tensor expected, nn.Module<ModelInput, ModelOutput> model)
{
    using var scope = NewDisposeScope();
    return (Logits(model) - expected).abs().max().item<float>();
}

// A folder as given; a hub id from the local HF cache, or downloaded into it with a progress bar per file
// (Python: huggingface_hub.snapshot_download, which from_pretrained calls).
static string LocalModelDir(string pathOrId)
{
    if (Directory.Exists(pathOrId)) return pathOrId;
    var bar = new DownloadProgressBar();
    string dir = HubDownloader.DownloadModel(pathOrId, new HubDownloadOptions { Progress = bar });
    bar.Finish();
    return dir;
}
