using Peft.Testing;
using Peft.Transformers;

namespace Peft.Transformers.Tests.Pipelines;

/// <summary>
/// Thread-safety (docs/ARCHITECTURE.md, "Reliability"): a pipeline over a model in eval mode is safe to call from
/// several threads at once: no_grad and dispose scopes are per thread in TorchSharp, the tokenizer is immutable after
/// loading, and eval-mode forwards do not write module state. Checked here: 8 threads give exactly the sequential outputs.
/// </summary>
public sealed class PipelineConcurrencyTests
{
    private static readonly string[] Texts =
    [
        "Computers are useless. They can only give you answers.", "The senate votes today.", "Paint the sky blue.",
        "Science is organized knowledge.", "Work expands to fill the time.", "A short one.", "Another sentence here, longer than most.",
        "Eight threads at once.",
    ];

    [Fact]
    public void Text_classification_from_8_threads_matches_sequential_outputs()
    {
        using var clf = (TextClassificationPipeline)Pipeline.Create("text-classification", Fixtures.Model("bert-tiny"));
        var expected = Texts.Select(t => clf.Run(t, topK: null)).ToArray();
        var results = new IReadOnlyList<PipelineResult>[Texts.Length, 20];
        var threads = Enumerable.Range(0, Texts.Length).Select(i => new Thread(() =>
        {
            for (int k = 0; k < 20; k++) results[i, k] = clf.Run(Texts[(i + k) % Texts.Length], topK: null);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        for (int i = 0; i < Texts.Length; i++)
            for (int k = 0; k < 20; k++)
                Assert.Equal(expected[(i + k) % Texts.Length], results[i, k]);
    }

    [Fact]
    public void Greedy_text_generation_from_8_threads_matches_sequential_outputs()
    {
        using var gen = Pipeline.Create("text-generation", Fixtures.Model("gpt2-tiny"));
        var config = new GenerationConfig { MaxNewTokens = 8, DoSample = false };
        var expected = Texts.Select(t => gen.Run(t, config)[0].GeneratedText).ToArray();
        var results = new string?[Texts.Length, 3];
        var threads = Enumerable.Range(0, Texts.Length).Select(i => new Thread(() =>
        {
            for (int k = 0; k < 3; k++) results[i, k] = gen.Run(Texts[(i + k) % Texts.Length], config)[0].GeneratedText;
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        for (int i = 0; i < Texts.Length; i++)
            for (int k = 0; k < 3; k++)
                Assert.Equal(expected[(i + k) % Texts.Length], results[i, k]);
    }
}
