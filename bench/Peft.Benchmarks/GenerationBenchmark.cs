using Peft.Transformers;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Benchmarks;

/// <summary>
/// Greedy decoding speed with the key/value cache (one new token per step) versus recomputing the whole sequence
/// every step (<c>use_cache=false</c>), on a tiny OPT and on an OPT-125m-sized random model (FromConfig).
/// Reports new tokens per second for both, at 64 and 128 new tokens (the uncached cost grows quadratically).
/// </summary>
public sealed class GenerationBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "generation";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        var device = options.Device == "cuda" ? CUDA : CPU;
        int[] lengths = options.Quick ? [16] : [64, 128];
        var cases = new (string Name, OPTConfig Config)[]
        {
            ("opt-tiny (h64, 2 layers)", new OPTConfig { ModelType = "opt", VocabSize = 1000, HiddenSize = 64, NumHiddenLayers = 2, NumAttentionHeads = 4, FfnDim = 256, MaxPositionEmbeddings = 512, WordEmbedProjDim = 64 }),
            ("opt-125m-sized (h768, 12 layers)", new OPTConfig { ModelType = "opt", WordEmbedProjDim = 768 }),
        };
        foreach (var (name, config) in cases)
        {
            using var model = AutoModelForCausalLM.FromConfig(config);
            model.to(device);
            model.eval();
            using var prompt = randint(4, config.VocabSize, [1, 8], dtype: ScalarType.Int64, device: device);
            foreach (var (newTokens, cache) in lengths.SelectMany(n => new[] { (n, true), (n, false) }))
            {
                // eos disabled so every run produces exactly newTokens tokens
                var gen = new GenerationConfig { MaxNewTokens = newTokens, UseCache = cache, EosTokenIds = [] };
                double seconds = Timing.MedianSeconds(() =>
                {
                    using var o = model.Generate(prompt, null, gen);
                    if (o.shape[1] != 8 + newTokens) throw new InvalidOperationException($"expected {8 + newTokens} tokens, got {o.shape[1]}");
                }, options.Quick ? 1 : options.Repeats);
                report(new Dictionary<string, object?>
                {
                    ["model"] = name,
                    ["use_cache"] = cache,
                    ["new_tokens"] = newTokens,
                    ["median_s"] = seconds,
                    ["tokens_per_s"] = newTokens / seconds,
                });
            }
        }
    }
}
