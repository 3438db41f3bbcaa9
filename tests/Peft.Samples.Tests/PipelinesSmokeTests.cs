using System.Text.Json.Nodes;
using Peft.Testing;
using Xunit.Abstractions;

namespace Peft.Samples.Tests;

/// <summary>
/// Runs samples/Pipelines on the tiny fixture models and checks each task's printed result: the shape HF's pipeline
/// returns (labels from the model's config, spans inside the input, one vector per token), streaming equal to the
/// non-streamed text, and the chat pipeline returning the conversation with the assistant's reply appended.
/// </summary>
public class PipelinesSmokeTests(ITestOutputHelper output)
{
    [Fact]
    public void EveryPipelineTaskPrintsAWellFormedResult()
    {
        string stdout = SampleProcess.Run(output, "Pipelines", "--smoke"); // the models shipped in samples/data/models
        string models = Path.Combine(Fixtures.Hf, "models"); // the originals of those copies: the expected labels
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => l.Contains(" | ")).Select(l => (Task: l[..l.IndexOf(" | ")].Trim(), Result: l[(l.IndexOf(" | ") + 3)..].TrimEnd('\r')))
            .ToList();
        string One(string task) => Assert.Single(lines, l => l.Task == task).Result;

        Assert.StartsWith("Two things are infinite:", One("text-generation"));
        Assert.True(One("text-generation").Length > "Two things are infinite:".Length, "no new text");
        Assert.EndsWith("(same as the non-streamed continuation: True)", One("text-generation stream"));

        Assert.StartsWith("<|im_start|>system\\nYou answer in one sentence.<|im_end|>", One("chat template"));
        Assert.EndsWith("<|im_start|>assistant\\n", One("chat template"));
        var conversation = JsonNode.Parse(One("chat conversation"))!.AsArray();
        Assert.Equal(["system", "user", "assistant"], conversation.Select(m => m!["role"]!.GetValue<string>()));
        Assert.Equal("What is LoRA?", conversation[1]!["content"]!.GetValue<string>());
        Assert.EndsWith("(same as the reply: True)", One("chat stream"));
        Assert.StartsWith(conversation[2]!["content"]!.GetValue<string>() + "  (same", One("chat stream"));

        var labels = JsonNode.Parse(File.ReadAllText(Path.Combine(models, "bert-tiny", "config.json")))!["id2label"]!.AsObject()
            .Select(kv => kv.Value!.GetValue<string>()).ToHashSet();
        var best = One("text-classification").Split(' ');
        Assert.Contains(best[0], labels);
        var all = One("text-classification all").Split(", ").Select(s => s.Split(' ')).ToList();
        Assert.Equal(labels.Count, all.Count);
        Assert.Equal(best[0], all[0][0]);                                     // best first
        Assert.Equal(1.0, all.Sum(a => double.Parse(a[1], System.Globalization.CultureInfo.InvariantCulture)), 2);

        foreach (var strategy in new[] { "none", "simple", "first", "average", "max" })
            Assert.Matches(@"^\d+ entities", One($"ner {strategy}"));
        Assert.DoesNotContain("'##", One("ner first"));                        // word-level strategies never split words

        var fills = lines.Where(l => l.Task == "fill-mask").ToList();
        Assert.Equal(3, fills.Count);
        Assert.All(fills, f => Assert.Contains("\"The meaning of life is", f.Result));

        const string context = "Ada Lovelace wrote the first computer program in 1843 for the Analytical Engine.";
        var qa = System.Text.RegularExpressions.Regex.Match(One("question-answering"), @"^'(.*)' \[(\d+),(\d+)\) ");
        Assert.True(qa.Success, One("question-answering"));
        Assert.Equal(context[int.Parse(qa.Groups[2].Value)..int.Parse(qa.Groups[3].Value)], qa.Groups[1].Value);

        Assert.Matches(@"^\d+ tokens x 64 dims", One("feature-extraction"));
        Assert.Contains("done", stdout);
    }
}
