using System.Text.Json;
using Peft.Testing;
using Xunit.Abstractions;

namespace Peft.Samples.Tests;

/// <summary>
/// samples/TextClassification in --smoke mode (64 train / 32 test rows, 4 steps per phase): the tokenizer folder it
/// builds, the MLM base checkpoint, both fine-tuning runs' metrics (computed by computeMetrics at each epoch), the
/// pipeline's labels, the loss curve and the Trainer logs. The accuracy bar is the full run's (the sample exits 1
/// below it); a smoke run trains too little to promise it.
/// </summary>
public class TextClassificationSampleTests(ITestOutputHelper output)
{
    private static readonly string[] Topics = ["computers", "politics", "science", "work", "art"];

    [Fact]
    public void SmokeRunTrainsBothMethodsAndReportsMetrics()
    {
        using var dir = new TempDir();
        string stdout = SampleProcess.Run(output, "TextClassification", $"--smoke --out \"{dir.Path}\"");
        Assert.Contains("majority-class baseline", stdout);
        Assert.Contains("done", stdout);

        // the masked-LM corpus is quotes.jsonl without the test split: every test quote is in quotes.jsonl, so at
        // least as many entries as the test split has distinct quotes are left out, and the rest are kept
        var corpus = System.Text.RegularExpressions.Regex.Match(stdout, @"([\d,]+)\s+unlabelled\s+quotes\s+of\s+quotes\.jsonl\s+\(([\d,]+)\s+left\s+out");
        Assert.True(corpus.Success, "the pre-training corpus line is missing");
        int kept = int.Parse(corpus.Groups[1].Value.Replace(",", ""), System.Globalization.CultureInfo.InvariantCulture);
        int leftOut = int.Parse(corpus.Groups[2].Value.Replace(",", ""), System.Globalization.CultureInfo.InvariantCulture);
        int testQuotes = File.ReadLines(Path.Combine(SampleProcess.DataDir("TextClassification"), "topics_test.csv")).Skip(1).Distinct().Count();
        int allQuotes = File.ReadLines(Path.Combine(SampleProcess.DataDir("TextClassification"), "quotes.jsonl")).Count(l => l.Trim().Length > 0);
        Assert.InRange(leftOut, testQuotes, allQuotes / 10);
        Assert.Equal(allQuotes, kept + leftOut);

        // a real BERT tokenizer folder and checkpoint
        string baseDir = Path.Combine(dir.Path, "base");
        Assert.Equal(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], File.ReadLines(Path.Combine(baseDir, "vocab.txt")).Take(5));
        Assert.True(File.Exists(Path.Combine(baseDir, "model.safetensors")));
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(baseDir, "config.json"))))
            Assert.Equal("bert", config.RootElement.GetProperty("model_type").GetString());
        // a masked-LM checkpoint (BertForMaskedLM: MLM head, no pooler), as the fine-tuning runs expect
        var keys = SafetensorsKeys(Path.Combine(baseDir, "model.safetensors"));
        Assert.Contains(keys, k => k.StartsWith("cls.predictions.", StringComparison.Ordinal));
        Assert.DoesNotContain(keys, k => k.Contains("pooler.", StringComparison.Ordinal));

        var results = SampleProcess.Results(dir.Path);
        double baseline = SampleProcess.Finite(results, "baseline_accuracy");
        Assert.InRange(baseline, 1.0 / Topics.Length, 1.0);
        var runs = results.GetProperty("runs").EnumerateArray().ToList();
        Assert.Equal(2, runs.Count);
        foreach (var run in runs)
        {
            Assert.InRange(SampleProcess.Finite(run, "accuracy"), 0.0, 1.0);
            Assert.InRange(SampleProcess.Finite(run, "macro_f1"), 0.0, 1.0);
            Assert.Equal(100 * (run.GetProperty("accuracy").GetDouble() - baseline), SampleProcess.Finite(run, "margin_points"), 6);
            Assert.True(SampleProcess.Finite(run, "train_seconds") > 0);
        }
        var (full, lora) = (runs.Single(r => !r.GetProperty("lora").GetBoolean()), runs.Single(r => r.GetProperty("lora").GetBoolean()));
        Assert.Equal(full.GetProperty("all_params").GetInt64(), full.GetProperty("trainable_params").GetInt64());
        Assert.InRange(lora.GetProperty("trainable_params").GetInt64(), 1, full.GetProperty("all_params").GetInt64() / 10);

        var labels = results.GetProperty("pipeline").EnumerateArray()
            .SelectMany(p => p.GetProperty("labels").EnumerateArray().Select(l => l.GetProperty("label").GetString())).ToList();
        Assert.Equal(10, labels.Count);
        Assert.All(labels, l => Assert.Contains(l, Topics));

        SampleProcess.AssertPng(Path.Combine(dir.Path, "loss.png"));
        SampleProcess.AssertLossLogged(Path.Combine(dir.Path, "mlm-run"));
        foreach (var name in new[] { "full-run", "lora-run" })
        {
            SampleProcess.AssertLossLogged(Path.Combine(dir.Path, name));
            // eval_strategy = epoch: computeMetrics' keys, with the eval_ prefix, in the log
            var evals = File.ReadAllLines(Path.Combine(dir.Path, name, "log_history.jsonl")).Where(l => l.Contains("\"eval_accuracy\"")).ToList();
            Assert.NotEmpty(evals);
            Assert.All(evals, l => Assert.Contains("\"eval_f1\"", l));
        }
    }

    private static List<string> SafetensorsKeys(string path)
    {
        using var stream = File.OpenRead(path);
        var lengthBytes = new byte[8];
        stream.ReadExactly(lengthBytes);
        var header = new byte[BitConverter.ToInt64(lengthBytes)];
        stream.ReadExactly(header);
        using var json = JsonDocument.Parse(header);
        return json.RootElement.EnumerateObject().Select(p => p.Name).ToList();
    }

    [Fact]
    public void ModelOptionFineTunesAnExistingBertFolder()
    {
        using var first = new TempDir();
        SampleProcess.Run(output, "TextClassification", $"--smoke --out \"{first.Path}\"");
        string checkpoint = Path.Combine(first.Path, "base");   // vocab.txt + config.json + model.safetensors, as a HF BERT folder
        using var dir = new TempDir();
        string stdout = SampleProcess.Run(output, "TextClassification", $"--smoke --model \"{checkpoint}\" --out \"{dir.Path}\"");
        Assert.DoesNotContain("masked-LM pre-training", stdout);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "base")), "--model must not build a base of its own");
        var results = SampleProcess.Results(dir.Path);
        Assert.Equal(checkpoint, results.GetProperty("model").GetString());
        Assert.All(results.GetProperty("runs").EnumerateArray(), r => Assert.InRange(SampleProcess.Finite(r, "accuracy"), 0.0, 1.0));
    }
}
