using Peft.Core;
using Peft.Datasets;
using Peft.Transformers;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Samples;

/// <summary>
/// The causal-LM steps shared by the LoraCausalLm and QLora samples: a small OPT base pre-trained here (no Hub), a
/// Trainer run with <c>DataCollatorForLanguageModeling(mlm: false)</c>, perplexity and greedy completion.
/// </summary>
public static class CausalLmSteps
{
    /// <summary>The quotes' text column.</summary>
    public const string TextColumn = "quote";

    /// <summary>
    /// The shipped quotes (data/quotes.jsonl next to the program; 20–120 characters) split into the general quotes the
    /// base is pre-trained on and the 'science' domain (85 % train / 15 % held out, seed 42); <paramref name="smoke"/>
    /// keeps 64 / 32 / 8 rows. Prints one line.
    /// </summary>
    public static (Dataset General, Dataset DomainTrain, Dataset DomainTest) ScienceSplit(bool smoke)
    {
        var quotes = DatasetLoader.LoadDataset("json", new Dictionary<string, string> { ["train"] = Path.Combine(AppContext.BaseDirectory, "data", "quotes.jsonl") })["train"]
            .Filter(row => ((string)row["quote"]!).Length is >= 20 and <= 120);
        static bool IsDomain(DatasetRow row) => ((IEnumerable<string>)row["tags"]!).Contains("science");
        var split = quotes.Filter(IsDomain).TrainTestSplit(testSize: 0.15, seed: 42);
        var (domainTrain, domainTest) = (split["train"], split["test"]);
        var general = quotes.Filter(row => !IsDomain(row));
        if (smoke) (general, domainTrain, domainTest) = (general.Select(Enumerable.Range(0, 64)), domainTrain.Select(Enumerable.Range(0, 32)), domainTest.Select(Enumerable.Range(0, 8)));
        AnsiConsole.MarkupLine($"[bold]data[/]  {general.NumRows:N0} general quotes (base), 'science': {domainTrain.NumRows:N0} train / {domainTest.NumRows:N0} held out");
        return (general, domainTrain, domainTest);
    }

    /// <summary>
    /// Writes a byte-level BPE tokenizer into <paramref name="dir"/>, builds a small OPT (2 layers, hidden 128) from a
    /// config, pre-trains it on <paramref name="texts"/> for <paramref name="steps"/> Trainer steps and saves it there
    /// (<c>config.json</c> + <c>model.safetensors</c>), so <paramref name="dir"/> is an ordinary HF model folder.
    /// Returns the Trainer's LogHistory.
    /// </summary>
    public static List<IReadOnlyDictionary<string, double>> PreTrainSmallOpt(string dir, Dataset texts, int steps, string runDir)
    {
        ByteLevelBpeFiles.Write(dir);
        var tok = AutoTokenizer.FromPretrained(dir);
        var config = new OPTConfig
        {
            VocabSize = ByteLevelBpeFiles.VocabSize, HiddenSize = 128, NumHiddenLayers = 2, NumAttentionHeads = 4, FfnDim = 512,
            MaxPositionEmbeddings = 256, Dropout = 0.0, PadTokenId = ByteLevelBpeFiles.PadId,
            BosTokenId = ByteLevelBpeFiles.EosId, EosTokenId = [ByteLevelBpeFiles.EosId],
        };
        using var model = AutoModelForCausalLM.FromConfig(config);
        AnsiConsole.MarkupLine($"[bold]base model[/]  OPT from config: {model.NumParameters():N0} parameters, pre-training {steps} steps on {texts.NumRows:N0} quotes");
        var history = Train(model, tok, texts, new TrainingArguments
        {
            OutputDir = runDir, MaxSteps = steps, PerDeviceTrainBatchSize = 16, LearningRate = 3e-3, WeightDecay = 0.01,
            WarmupSteps = steps / 10, LoggingSteps = Math.Max(1, steps / 25), SaveStrategy = IntervalStrategy.No, ReportTo = ["jsonl"],
        });
        model.SavePretrained(dir);
        return history;
    }

    /// <summary>
    /// Tokenizes the <see cref="TextColumn"/> of <paramref name="texts"/> (Python: <c>data.map(lambda s: tokenizer(s["quote"]), batched=True)</c>)
    /// and trains <paramref name="model"/> with the Trainer and <c>DataCollatorForLanguageModeling(tokenizer, mlm=False)</c>
    /// (labels = input ids, padding set to -100). Returns the LogHistory; the model is left in eval mode.
    /// </summary>
    public static List<IReadOnlyDictionary<string, double>> Train(nn.Module<ModelInput, ModelOutput> model, PreTrainedTokenizer tok, Dataset texts, TrainingArguments args)
    {
        if (Directory.Exists(args.OutputDir)) Directory.Delete(args.OutputDir, recursive: true);
        var data = texts.Map(b => tok.EncodeBatch(b.Column<string>(TextColumn), truncation: true, maxLength: 128).ToColumns(), batched: true);
        using var collator = new DataCollatorForLanguageModeling(tok, mlm: false);
        var trainer = new Trainer(model, args, trainDataset: data, dataCollator: collator);
        trainer.Train();
        model.eval();
        var losses = trainer.State.LogHistory.Where(e => e.ContainsKey("loss")).Select(e => e["loss"]).ToList();
        if (losses.Count > 0) AnsiConsole.MarkupLine($"  loss {losses[0]:F3} -> {losses[^1]:F3} after {trainer.State.GlobalStep} steps");
        return trainer.State.LogHistory;
    }

    /// <summary>
    /// Perplexity of <paramref name="model"/> on <paramref name="texts"/>: exp of the mean token negative log-likelihood
    /// over all their tokens (each text starts with the tokenizer's BOS token and is scored from its second token on,
    /// as the HF causal-LM loss does), in batches of 32 padded texts.
    /// </summary>
    public static double Perplexity(nn.Module<ModelInput, ModelOutput> model, PreTrainedTokenizer tok, IReadOnlyList<string> texts)
    {
        using var noGrad = no_grad();
        double nll = 0;
        long tokens = 0;
        foreach (var chunk in texts.Chunk(32))
        {
            using var scope = NewDisposeScope();
            using var enc = tok.EncodeBatch(chunk, padding: true, truncation: true, maxLength: 128);
            var labels = enc.InputIds.masked_fill(enc.AttentionMask.eq(0), -100); // [B, T]
            var output = model.forward(new ModelInput { InputIds = enc.InputIds, AttentionMask = enc.AttentionMask, Labels = labels });
            long n = labels.narrow(1, 1, labels.shape[1] - 1).ne(-100).sum().item<long>();
            nll += output.Loss!.item<float>() * n;
            tokens += n;
        }
        return Math.Exp(nll / tokens);
    }

    /// <summary>Greedy completion of <paramref name="prompt"/> (40 new tokens, repetition penalty 1.2), special tokens dropped.</summary>
    public static string Complete(PreTrainedModel model, PreTrainedTokenizer tok, string prompt)
    {
        using var scope = NewDisposeScope();
        var ids = tensor(tok.Encode(prompt).Select(i => (long)i).ToArray()).unsqueeze(0); // [1, T]
        var output = model.Generate(ids, ones_like(ids), new GenerationConfig { MaxNewTokens = 40, DoSample = false, RepetitionPenalty = 1.2 });
        return tok.Decode(output[0].data<long>().Select(i => (int)i), skipSpecialTokens: true);
    }

    /// <summary>The logits of <paramref name="model"/> for <paramref name="texts"/> (padded batch), as a host array, for equality checks.</summary>
    public static float[] Logits(nn.Module<ModelInput, ModelOutput> model, PreTrainedTokenizer tok, IReadOnlyList<string> texts)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using var enc = tok.EncodeBatch(texts, padding: true, truncation: true, maxLength: 128);
        var output = model.forward(new ModelInput { InputIds = enc.InputIds, AttentionMask = enc.AttentionMask });
        return output.Logits!.to_type(ScalarType.Float32).data<float>().ToArray();
    }
}
