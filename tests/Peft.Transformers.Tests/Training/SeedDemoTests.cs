using Peft.Core;
using Peft.Datasets;
using Peft.Evaluate;
using Peft.Testing;
using Xunit.Abstractions;

namespace Peft.Transformers.Tests.Training;

/// <summary>
/// The seed's two demos as tests on the tiny models and small slices of the shared data: a BERT topic classifier
/// evaluated every epoch with accuracy and macro-F1 from Peft.Evaluate, and an OPT LoRA (q_proj/v_proj, r 8,
/// alpha 16, dropout 0.1, lr 2e-4) causal LM with <c>DataCollatorForLanguageModeling(mlm: false)</c>.
/// </summary>
public class SeedDemoTests(ITestOutputHelper output)
{
    [Fact]
    public void BertTopicClassifierWithEpochEvaluationAndMetrics()
    {
        using var dir = new TempDir();
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("bert-tiny"));
        var ds = DatasetLoader.LoadDataset("csv", new Dictionary<string, string> { ["train"] = Fixtures.Data("topics_train.csv"), ["test"] = Fixtures.Data("topics_test.csv") });
        Dataset Prepare(Dataset d, int n) => d.Shuffle(seed: 42).Select(Enumerable.Range(0, n))
            .Map(b => tok.EncodeBatch(b.Column<string>("text"), truncation: true, maxLength: 24).ToColumns(), batched: true, removeColumns: ["text"]);
        var train = Prepare(ds["train"], 64);
        var test = Prepare(ds["test"], 32);
        using var model = AutoModelForSequenceClassification.FromPretrained(Fixtures.Model("bert-tiny"), new FromPretrainedOptions { NumLabels = 5 });
        var accuracy = Metrics.Load("accuracy");
        var f1 = Metrics.Load("f1");
        var args = new TrainingArguments
        {
            OutputDir = dir.Path, EvalStrategy = IntervalStrategy.Epoch, PerDeviceTrainBatchSize = 16, NumTrainEpochs = 2,
            LoggingSteps = 3, LearningRate = 1e-3, SaveStrategy = IntervalStrategy.No, DisableTqdm = true,
        };
        var trainer = new Trainer(model, args, trainDataset: train, evalDataset: test, tokenizer: tok, computeMetrics: p =>
        {
            var preds = p.ArgMax();
            var refs = p.Labels;
            var m = new Dictionary<string, double>(accuracy.Compute(preds, refs));
            m["f1"] = f1.Compute(preds, refs, new Dictionary<string, object> { ["average"] = "macro" })["f1"];
            return m;
        });
        var before = trainer.Evaluate();
        TrainOutput result = trainer.Train();
        Assert.Equal(8, result.GlobalStep);
        var evals = trainer.State.LogHistory.Where(e => e.ContainsKey("eval_accuracy")).ToList();
        Assert.Equal(2, evals.Count); // one per epoch (Train starts a new TrainerState, as HF's train() does)
        Assert.Equal([1.0, 2.0], evals.Select(e => e["epoch"]));
        var after = evals[^1];
        output.WriteLine($"eval_loss {before["eval_loss"]:F4} -> {after["eval_loss"]:F4}, accuracy {after["eval_accuracy"]:F3}, macro-F1 {after["eval_f1"]:F3}");
        Assert.True(after["eval_loss"] < before["eval_loss"], "training lowered the eval loss");
        var pred = trainer.Predict(test);
        double acc = pred.Prediction.ArgMax().Zip(pred.Prediction.Labels).Count(x => x.First == x.Second) / 32.0;
        Assert.Equal(acc, after["eval_accuracy"], 12);
        Assert.Equal(2, trainer.State.LogHistory.Count(e => e.ContainsKey("grad_norm")));
        trainer.SaveModel(dir.File("model"));
        Assert.True(File.Exists(Path.Combine(dir.File("model"), "model.safetensors")));
    }

    [Fact]
    public void OptLoraCausalLmWithLanguageModelingCollator()
    {
        using var dir = new TempDir();
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("opt-tiny"));
        var quotes = DatasetLoader.LoadDataset("json", Fixtures.Data("quotes.jsonl"))["train"].Select(Enumerable.Range(0, 48))
            .Map(b => tok.EncodeBatch(b.Column<string>("quote"), truncation: true, maxLength: 32).ToColumns(), batched: true);
        var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny"));
        using var pm = PeftModel.GetPeftModel(model, new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = ["q_proj", "v_proj"], LoraDropout = 0.1, TaskType = TaskType.CausalLM });
        var args = new TrainingArguments
        {
            OutputDir = dir.Path, PerDeviceTrainBatchSize = 8, NumTrainEpochs = 2, LoggingSteps = 2, LearningRate = 2e-4,
            WarmupSteps = 2, SaveStrategy = IntervalStrategy.No, DisableTqdm = true,
        };
        var trainer = new Trainer(pm, args, trainDataset: quotes, dataCollator: new DataCollatorForLanguageModeling(tok, mlm: false));
        var result = trainer.Train();
        Assert.Equal(12, result.GlobalStep);
        var losses = trainer.State.LogHistory.Where(e => e.ContainsKey("grad_norm")).Select(e => e["loss"]).ToList();
        output.WriteLine("losses: " + string.Join(", ", losses.Select(l => l.ToString("F4", System.Globalization.CultureInfo.InvariantCulture))));
        Assert.Equal(6, losses.Count);
        Assert.All(losses, l => Assert.True(double.IsFinite(l) && l > 0));
        Assert.True(result.Metrics["train_loss"] > 0);
        Assert.Contains(pm.named_parameters(), p => p.name.Contains("lora_B") && p.parameter.abs().sum().item<float>() > 0);
        trainer.SaveModel();
        Assert.True(File.Exists(dir.File("adapter_model.safetensors")));
        Assert.True(File.Exists(dir.File("tokenizer.json")));
        Assert.False(File.Exists(dir.File("model.safetensors")));
    }
}
