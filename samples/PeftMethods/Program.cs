// Peft.NET PEFT methods side by side: one task, seven methods, one table.
//
// The task: adapt a small causal LM to the 'computers' quotes of samples/data/quotes.jsonl. Each method wraps a fresh
// copy of the same base with PeftModel.GetPeftModel (Python: get_peft_model(model, config)), trains with the Trainer
// for the same number of steps, is evaluated on held-out 'computers' quotes, saved (adapter_config.json +
// adapter_model.safetensors, PEFT's format), reloaded onto another fresh base (Python: PeftModel.from_pretrained) and
// checked to give the same logits.
//
//  1. data       quotes.jsonl via Peft.Datasets: short quotes, train / eval split, the 'computers' subset
//  2. base       a word-level tokenizer and an OPT from a config, pre-trained for a few seconds on all train quotes
//                (or --model: a real causal LM folder / hub id, no pre-training)
//  3. methods    LoRA, AdaLoRA, IA3, prompt tuning, P-tuning, prefix tuning, bottleneck adapters — the PEFT defaults
//                for the model type where PEFT has them (target modules), small sizes otherwise
//  4. results    table: trainable params (% of all), final train loss, eval loss, wall time, reload max |Δlogit|;
//                methods.json and loss.png (one curve per method) in the output folder
//
// One learning rate per method, picked by hand for this tiny base (IA3 and prompt tuning train few, multiplicative or
// input-side parameters and take larger ones, as in PEFT's examples); this compares the mechanics on equal footing
// (same base, data, steps and seed), it is not a tuned benchmark. On a base this small the adapters move the loss by
// hundredths; with --model and a real checkpoint the differences between methods are larger.
//
// Usage: dotnet run --project samples/PeftMethods [-- --out DIR] [--steps N] [--model HF_FOLDER_OR_HUB_ID] [--smoke]
// --smoke trains each method a few steps (CI).
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Peft.Core;
using Peft.Datasets;
using Peft.Samples;
using Peft.Transformers;
using Peft.Transformers.Hub;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

var outDir = Path.Combine(Path.GetTempPath(), "peft-methods");
int steps = 60, baseSteps = 250;
string? modelId = null;
bool smoke = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--out": outDir = args[++i]; break;
        case "--steps": steps = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--model": modelId = args[++i]; break;
        case "--smoke": smoke = true; break;
        default: throw new ArgumentException($"unknown argument '{args[i]}'");
    }
}
if (smoke) (steps, baseSteps) = (8, 30);
manual_seed(0);
var total = Stopwatch.StartNew();

// 1. data --------------------------------------------------------------------------------------------------------------
// Python: load_dataset("json", data_files=...)["train"].filter(...).train_test_split(test_size=0.05, seed=42)
var quotes = DatasetLoader.LoadDataset("json", new Dictionary<string, string> { ["train"] = Path.Combine(AppContext.BaseDirectory, "data", "quotes.jsonl") })["train"]
    .Filter(row => ((string)row["quote"]!).Length is >= 20 and <= 120);
var split = quotes.TrainTestSplit(testSize: 0.05, seed: 42);
bool IsDomain(DatasetRow row) => ((IEnumerable<string>)row["tags"]!).Contains("computers");
var domainTrain = split["train"].Filter(IsDomain);
var domainEval = split["test"].Filter(IsDomain);
AnsiConsole.MarkupLine($"[bold]data[/]  {split["train"].NumRows:N0} train quotes; 'computers': {domainTrain.NumRows} train / {domainEval.NumRows} eval");

// 2. base model --------------------------------------------------------------------------------------------------------
string baseDir;
if (modelId is null)
{
    baseDir = Path.Combine(outDir, "base");
    int vocab = WordLevelTokenizer.Train(split["train"].Column<string>("quote"), 2000, baseDir);
    // Python: OPTForCausalLM(OPTConfig(vocab_size=2000, hidden_size=64, num_hidden_layers=2, ffn_dim=256, ...))
    using var pretrain = AutoModelForCausalLM.FromConfig(new OPTConfig
    {
        VocabSize = vocab, HiddenSize = 64, NumHiddenLayers = 2, NumAttentionHeads = 4, FfnDim = 256, MaxPositionEmbeddings = 128,
        Dropout = 0.0, PadTokenId = WordLevelTokenizer.PadId, BosTokenId = WordLevelTokenizer.EosId, EosTokenId = [WordLevelTokenizer.EosId],
    });
    var clock = Stopwatch.StartNew();
    var baseTok = AutoTokenizer.FromPretrained(baseDir);
    Train(pretrain, baseTok, split["train"], null, baseSteps, 1e-2, Path.Combine(outDir, "base-run"));
    pretrain.SavePretrained(baseDir);
    AnsiConsole.MarkupLine($"[bold]base[/]  OPT from config, {pretrain.NumParameters():N0} parameters, pre-trained {baseSteps} steps in {clock.Elapsed.TotalSeconds:F1} s");
}
else
{
    baseDir = LocalModelDir(modelId);
    AnsiConsole.MarkupLine($"[bold]base[/]  {Markup.Escape(modelId)}");
}
var tok = AutoTokenizer.FromPretrained(baseDir);

// 3. methods -------------------------------------------------------------------------------------------------------------
// Python: LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16), AdaLoraConfig(...), IA3Config(...), PromptTuningConfig(
// num_virtual_tokens=8), PromptEncoderConfig(num_virtual_tokens=8, encoder_hidden_size=64), PrefixTuningConfig(
// num_virtual_tokens=8), and the bottleneck adapters (LLM-Adapters' BottleneckConfig). Target modules: PEFT's defaults.
(string Name, PeftConfig Config, double Lr)[] methods =
[
    ("LoRA", new LoraConfig { R = 8, LoraAlpha = 16, TaskType = TaskType.CausalLM }, 2e-2),
    ("AdaLoRA", new AdaLoraConfig { InitR = 12, TargetR = 4, LoraAlpha = 16, Tinit = steps / 5, Tfinal = steps / 5, DeltaT = Math.Max(1, steps / 10), TotalStep = steps, TaskType = TaskType.CausalLM }, 2e-2),
    ("IA3", new IA3Config { TaskType = TaskType.CausalLM }, 5e-2),
    ("prompt tuning", new PromptTuningConfig { NumVirtualTokens = 8, TaskType = TaskType.CausalLM }, 3e-2),
    ("P-tuning", new PromptEncoderConfig { NumVirtualTokens = 8, EncoderHiddenSize = 64, TaskType = TaskType.CausalLM }, 1e-2),
    ("prefix tuning", new PrefixTuningConfig { NumVirtualTokens = 8, TaskType = TaskType.CausalLM }, 1e-2),
    ("bottleneck adapters", new BottleneckAdapterConfig { ReductionFactor = 8, TaskType = TaskType.CausalLM }, 2e-2),
];
var rows = new List<MethodResult>();
var curves = new List<(string, IReadOnlyList<IReadOnlyDictionary<string, double>>)>();
foreach (var (name, config, lr) in methods)
{
    var clock = Stopwatch.StartNew();
    manual_seed(0);
    var model = AutoModelForCausalLM.FromPretrained(baseDir);
    using var pm = PeftModel.GetPeftModel(model, config);            // Python: get_peft_model(model, config)
    var (trainable, all) = pm.GetNbTrainableParameters();
    string runDir = Path.Combine(outDir, Slug(name));
    var trainer = Train(pm, tok, domainTrain, domainEval, steps, lr, runDir);
    double evalLoss = trainer.Evaluate()["eval_loss"];               // Python: trainer.evaluate()["eval_loss"]
    double trainLoss = trainer.State.LogHistory.Last(e => e.ContainsKey("loss"))["loss"];
    double seconds = clock.Elapsed.TotalSeconds;
    trainer.SaveModel();                                              // adapter files in runDir (Python: trainer.save_model())

    // Python: PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), run_dir); same logits
    double diff = ReloadDifference(pm, runDir);
    rows.Add(new MethodResult(name, config.PeftType, trainable, all, trainLoss, evalLoss, seconds, diff,
        Directory.GetFiles(runDir, "adapter_*").Select(Path.GetFileName).Order().ToArray()!));
    curves.Add((name, trainer.State.LogHistory));
    AnsiConsole.MarkupLine($"  {name}: eval loss {evalLoss:F3} in {seconds:F1} s");
}

// 4. results -------------------------------------------------------------------------------------------------------------
var table = new Table().AddColumns("method", "trainable params", "final train loss", "eval loss", "time", "reload max |Δlogit|");
foreach (var r in rows)
    table.AddRow(r.Method, $"{r.Trainable:N0} ({100.0 * r.Trainable / r.Total:F2}%)", $"{r.TrainLoss:F3}", $"{r.EvalLoss:F3}", $"{r.Seconds:F1} s", $"{r.ReloadMaxDiff:E1}");
AnsiConsole.Write(table);
Directory.CreateDirectory(outDir);
string json = Path.Combine(outDir, "methods.json");
File.WriteAllText(json + ".tmp", JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true }));
File.Move(json + ".tmp", json, overwrite: true);
LossCurve.Write(Path.Combine(outDir, "loss.png"), "PeftMethods: training loss on 'computers' quotes", [.. curves]);
AnsiConsole.MarkupLine($"results: {json}; loss curves: {Path.Combine(outDir, "loss.png")}; adapters: {outDir}/<method>/");
var bad = rows.Where(r => !double.IsFinite(r.TrainLoss) || !double.IsFinite(r.EvalLoss) || r.ReloadMaxDiff > 1e-4).ToList();
if (bad.Count > 0)
{
    AnsiConsole.MarkupLine($"[red]not finite, or the reloaded adapter differs: {string.Join(", ", bad.Select(r => r.Method))}[/]");
    return 1;
}
AnsiConsole.MarkupLine($"[green]done[/] in {total.Elapsed.TotalSeconds:F0} s");
return 0;

// Helpers ----------------------------------------------------------------------------------------------------------------

// Python: Trainer(model, TrainingArguments(output_dir=d, max_steps=steps, per_device_train_batch_size=16,
//                 learning_rate=lr, logging_steps=...), train_dataset=tr, eval_dataset=ev,
//                 data_collator=DataCollatorForLanguageModeling(tok, mlm=False)).train()
static Trainer Train(nn.Module<ModelInput, ModelOutput> model, PreTrainedTokenizer tok, Dataset train, Dataset? eval, int steps, double lr, string runDir)
{
    if (Directory.Exists(runDir)) Directory.Delete(runDir, recursive: true);
    Dataset Encode(Dataset d) => d.Map(b => tok.EncodeBatch(b.Column<string>("quote"), truncation: true, maxLength: 64).ToColumns(), batched: true);
    var args = new TrainingArguments
    {
        OutputDir = runDir, MaxSteps = steps, PerDeviceTrainBatchSize = 16, PerDeviceEvalBatchSize = 32, LearningRate = lr,
        WarmupSteps = steps / 10, LoggingSteps = Math.Max(1, steps / 12), SaveStrategy = IntervalStrategy.No, ReportTo = ["jsonl"],
    };
    var trainer = new Trainer(model, args, trainDataset: Encode(train), evalDataset: eval is null ? null : Encode(eval),
        dataCollator: new DataCollatorForLanguageModeling(tok, mlm: false));
    trainer.Train();
    model.eval();
    return trainer;
}

// Max |logit difference| between the trained PeftModel and its saved adapter reloaded onto a fresh base.
double ReloadDifference(PeftModel trained, string adapterDir)
{
    using var scope = NewDisposeScope();
    using var noGrad = no_grad();
    using var enc = tok.EncodeBatch(["Computers are useless.", "The best way to predict the future is to invent it."], padding: true);
    var input = new ModelInput { InputIds = enc.InputIds, AttentionMask = enc.AttentionMask };
    var expected = trained.forward(input).Logits!;
    using var reloaded = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(baseDir), adapterDir);
    reloaded.eval();
    return (reloaded.forward(input).Logits! - expected).abs().max().item<float>();
}

static string Slug(string name) => name.Replace(' ', '-').ToLowerInvariant();

// A folder as given; a hub id from the local HF cache, or downloaded into it with a progress bar per file.
static string LocalModelDir(string pathOrId)
{
    if (Directory.Exists(pathOrId)) return pathOrId;
    var bar = new DownloadProgressBar();
    string dir = HubDownloader.DownloadModel(pathOrId, new HubDownloadOptions { Progress = bar });
    bar.Finish();
    return dir;
}

/// <summary>One row of the table (also written to methods.json).</summary>
internal sealed record MethodResult(string Method, string PeftType, long Trainable, long Total, double TrainLoss, double EvalLoss,
    double Seconds, double ReloadMaxDiff, string[] AdapterFiles);
