using System.Collections;
using Peft.Core;
using Peft.Datasets;
using Peft.Evaluate;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests;

/// <summary>
/// The public API contract of shared/docs/DESIGN.md, written the way outside callers write it, run on the tiny
/// fixtures: if a fixed name or shape changes, this file stops compiling or failing. (The Trainer part of the
/// contract is <see cref="TrainingContract"/>.)
/// </summary>
public class DesignContractTests
{
    [Fact]
    public void LoadingTokenizingForwardAndGeneration()
    {
        using var scope = NewDisposeScope();
        var dir = Fixtures.Model("opt-tiny");
        PretrainedConfig config = AutoConfig.FromPretrained(dir);
        Assert.Equal("opt", config.ModelType);
        PreTrainedTokenizer tok = AutoTokenizer.FromPretrained(dir);
        PreTrainedModel lm = AutoModelForCausalLM.FromPretrained(dir, new FromPretrainedOptions { Dtype = ScalarType.Float32, Device = CPU });
        using PreTrainedModel fresh = AutoModelForCausalLM.FromConfig(config);
        long bytes = lm.GetMemoryFootprint();
        Assert.True(bytes > 0);

        IReadOnlyList<int> ids = tok.Encode("Two things are infinite:", addSpecialTokens: true);
        string back = tok.Decode(ids, skipSpecialTokens: true);
        Assert.Equal("Two things are infinite:", back);
        IReadOnlyList<string> pieces = tok.Tokenize("Two things");
        Assert.NotEmpty(pieces);
        tok.PaddingSide = PaddingSide.Left;
        using BatchEncoding be = tok.EncodeBatch(["Two things are infinite:", "Hi"], padding: true, truncation: true, maxLength: 128);
        Tensor ids2d = be.InputIds, mask = be.AttentionMask;
        Assert.Equal(2, ids2d.shape[0]);

        ModelOutput o = lm.forward(new ModelInput { InputIds = ids2d, AttentionMask = mask });
        Tensor? logits = o.Logits, loss = o.Loss, last = o.LastHiddenState, start = o.StartLogits, end = o.EndLogits;
        Assert.NotNull(logits);
        Assert.Null(loss);
        Assert.Null(start ?? end);
        _ = last;

        Tensor outIds = lm.Generate(ids2d, mask, new GenerationConfig { MaxNewTokens = 4, DoSample = false });
        Assert.Equal(ids2d.shape[1] + 4, outIds.shape[1]);
        var g = new GenerationConfig
        {
            MaxNewTokens = 2, MaxLength = null, DoSample = false, Temperature = 1.0, TopP = 1.0, RepetitionPenalty = 1.0,
            TopK = 50, NumBeams = 1, NumReturnSequences = 1, PadTokenId = tok.PadTokenId, EosTokenId = tok.EosTokenId,
            BosTokenId = tok.BosTokenId,
        };
        Assert.Equal(2, lm.Generate(ids2d, mask, g).shape[0]);

        using var tmp = new TempDir();
        lm.SavePretrained(tmp.Path);
        Assert.True(File.Exists(tmp.File("model.safetensors")));
        lm.Dispose();
    }

    [Fact]
    public void ClassificationLoadersAndPipelines()
    {
        using var scope = NewDisposeScope();
        using PreTrainedModel clf = AutoModelForSequenceClassification.FromPretrained(Fixtures.Model("bert-tiny"), new FromPretrainedOptions { NumLabels = 5 });
        using PreTrainedModel tokCls = AutoModelForTokenClassification.FromPretrained(Fixtures.Model("bert-ner-tiny"));
        using PreTrainedModel qa = AutoModelForQuestionAnswering.FromPretrained(Fixtures.Model("bert-qa-tiny"));
        using PreTrainedModel enc = AutoModel.FromPretrained(Fixtures.Model("bert-tiny"));
        var quant = new FromPretrainedOptions
        {
            Quantization = new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitUseDoubleQuant = true, Bnb4BitComputeDtype = ScalarType.BFloat16 },
        };
        Assert.True(quant.Quantization.LoadIn4Bit);

        var gen = Pipeline.Create("text-generation", Fixtures.Model("gpt2-tiny"));
        var res = gen.Run("Two things are infinite:", new GenerationConfig { MaxNewTokens = 4, DoSample = false });
        Assert.False(string.IsNullOrEmpty(res[0].GeneratedText));
        var sentiment = Pipeline.Create("sentiment-analysis", Fixtures.Model("bert-tiny"));
        Assert.False(string.IsNullOrEmpty(sentiment.Run("I love this.")[0].Label));
    }

    [Fact]
    public void PeftContract()
    {
        using var scope = NewDisposeScope();
        var dir = Fixtures.Model("opt-tiny");
        var lm = AutoModelForCausalLM.FromPretrained(dir);
        PeftModel pm = PeftModel.GetPeftModel(lm, new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM });
        string line = pm.PrintTrainableParameters();
        (long trainable, long all) = pm.GetNbTrainableParameters();
        Assert.Equal($"trainable params: {trainable:N0} || all params: {all:N0} || trainable%: {100.0 * trainable / all:F4}", line);
        using var tmp = new TempDir();
        var adapterDir = tmp.File("adapter");
        pm.SavePretrained(adapterDir);
        PeftModel again = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(dir), adapterDir, isTrainable: false);
        PeftConfig cfg = PeftConfig.FromPretrained(adapterDir);
        Assert.IsType<LoraConfig>(cfg);
        var trainableCfg = cfg with { InferenceMode = false };
        Assert.False(trainableCfg.InferenceMode);
        using (pm.DisableAdapter()) { }
        pm.LoadAdapter(Fixtures.Adapter("opt-lora"), "other");
        pm.SetAdapter("other");
        pm.SetAdapter("default");
        pm.DeleteAdapter("other");
        torch.nn.Module merged = pm.MergeAndUnload();
        Assert.IsAssignableFrom<PreTrainedModel>(merged);

        var mlp = nn.Sequential(("fc1", nn.Linear(8, 16)), ("fc2", nn.Linear(16, 2)));
        PeftModel onAnyModule = PeftModel.GetPeftModel(mlp, new LoraConfig { R = 2, LoraAlpha = 4, TargetModules = ["fc1"] });
        Assert.True(onAnyModule.GetNbTrainableParameters().trainable > 0);
        _ = again;
    }

    [Fact]
    public void DatasetsAndMetricsContract()
    {
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("bert-tiny"));
        DatasetDict ds = DatasetLoader.LoadDataset("csv", new Dictionary<string, string>
        {
            ["train"] = Fixtures.Data("topics_train.csv"), ["test"] = Fixtures.Data("topics_test.csv"),
        });
        Dataset small = ds["train"].Shuffle(seed: 42).Select(Enumerable.Range(0, 100));
        Dataset tokd = small.Map(batch => tok.EncodeBatch(batch.Column<string>("text"), truncation: true).ToColumns(), batched: true, removeColumns: ["text"]);
        Assert.Equal(100, (int)tokd.NumRows);
        Assert.Contains("input_ids", tokd.ColumnNames);
        Dataset art = small.Filter(row => Convert.ToInt64(row["label"]) == 4);
        DatasetDict split = small.TrainTestSplit(testSize: 0.2, seed: 1);
        Assert.Equal(20, (int)split["test"].NumRows);
        var fromDict = Dataset.FromDict(new Dictionary<string, IList> { ["x"] = new List<int> { 1, 2, 3 } });
        IReadOnlyList<int> xs = fromDict.Column<int>("x");
        Assert.Equal([1, 2, 3], xs);
        _ = art;

        var accuracy = Metrics.Load("accuracy");
        IReadOnlyDictionary<string, double> r = accuracy.Compute(new[] { 0, 1, 1 }, new[] { 0, 1, 0 });
        Assert.Equal(2.0 / 3, r["accuracy"], 12);
        var f1 = Metrics.Load("f1").Compute(new[] { 0, 1, 1 }, new[] { 0, 1, 0 }, new Dictionary<string, object> { ["average"] = "macro" });
        Assert.True(f1.ContainsKey("f1"));
        var bleu = Metrics.Load("sacrebleu").Compute(new[] { "the cat sat on the mat" }, new IReadOnlyList<string>[] { new[] { "the cat sat on the mat" } });
        Assert.Equal(100.0, bleu["score"], 6);
    }

    [Fact]
    public void TrainingContract()
    {
        using var tmp = new TempDir();
        var dir = Fixtures.Model("opt-tiny");
        var tok = AutoTokenizer.FromPretrained(dir);
        var lm = AutoModelForCausalLM.FromPretrained(dir);
        PeftModel pm = PeftModel.GetPeftModel(lm, new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM });
        Dataset texts = Dataset.FromDict(new Dictionary<string, IList> { ["text"] = new List<string> { "Two things are infinite.", "Hello there", "A quote", "Another one" } });
        Dataset tokd = texts.Map(batch => tok.EncodeBatch(batch.Column<string>("text"), truncation: true).ToColumns(), batched: true, removeColumns: ["text"]);
        var accuracy = Metrics.Load("accuracy");
        var args = new TrainingArguments { OutputDir = tmp.Path, EvalStrategy = IntervalStrategy.Epoch, PerDeviceTrainBatchSize = 2,
                                           NumTrainEpochs = 1, LoggingSteps = 1, LearningRate = 2e-4, MaxSteps = 2, DataLoaderShuffle = false,
                                           SaveStrategy = IntervalStrategy.No, DisableTqdm = true, WeightDecay = 0.0, AdamBeta1 = 0.9, AdamBeta2 = 0.999,
                                           AdamEpsilon = 1e-8, WarmupSteps = 0, LrSchedulerType = SchedulerType.Linear, MaxGradNorm = 1.0 };
        var trainer = new Trainer(pm, args, trainDataset: tokd, evalDataset: tokd,
                                  dataCollator: new DataCollatorForLanguageModeling(tok, mlm: false),
                                  computeMetrics: p => accuracy.Compute(p.ArgMax(), p.Labels.Select(l => Math.Max(l, 0)).ToArray()));
        TrainOutput t = trainer.Train(resumeFromCheckpoint: null);
        Assert.Equal(2, t.GlobalStep);
        IReadOnlyList<IReadOnlyDictionary<string, double>> history = trainer.State.LogHistory;
        Assert.Contains(history, e => e.ContainsKey("loss") && e.ContainsKey("learning_rate") && e.ContainsKey("grad_norm") && e.ContainsKey("epoch") && e.ContainsKey("step"));
        IReadOnlyDictionary<string, double> ev = trainer.Evaluate();
        Assert.True(ev.ContainsKey("eval_loss") && ev.ContainsKey("eval_accuracy"));
        trainer.SaveModel(tmp.File("model"));
        trainer.SaveState();
        Assert.True(File.Exists(tmp.File("trainer_state.json")));
        _ = new DefaultDataCollator();
        IntervalStrategy[] strategies = [IntervalStrategy.No, IntervalStrategy.Steps, IntervalStrategy.Epoch];
        SchedulerType[] schedules = [SchedulerType.Linear, SchedulerType.Cosine, SchedulerType.CosineWithRestarts, SchedulerType.Polynomial,
                                     SchedulerType.Constant, SchedulerType.ConstantWithWarmup, SchedulerType.InverseSqrt];
        Assert.Equal(3, strategies.Distinct().Count());
        Assert.Equal(7, schedules.Distinct().Count());
    }
}
