using Peft.Transformers;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// hf_lora_bench.py / hf_gpu_bench.py <c>generate</c>: greedy decoding with the KV cache, batch 1, a random prompt
/// of 16 tokens, exactly N new tokens (min_new_tokens = max_new_tokens; 64 on CPU, 128 on CUDA), warm-up ≥ 1.
/// </summary>
public sealed class GenerateBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "generate";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        using var model = MirrorSetup.BuildModel(options);
        model.eval();
        int promptLen = 16, newTokens = options.Device == "cuda" ? 128 : 64;
        var g = new Generator((ulong)(options.Seed + 2));
        using var prompt = randint(3, MirrorSetup.Vocab(options), [1, promptLen], generator: g, dtype: ScalarType.Int64).to(MirrorSetup.DeviceOf(options));
        using var mask = ones_like(prompt);
        var gen = new GenerationConfig { MaxNewTokens = newTokens, MinNewTokens = newTokens, UseCache = true, DoSample = false };
        var ts = MirrorSetup.Time(() =>
        {
            using var o = model.Generate(prompt, mask, gen);
            if (o.shape[1] != promptLen + newTokens) throw new InvalidOperationException($"expected {promptLen + newTokens} tokens, got {o.shape[1]}");
        }, Math.Max(1, options.Warmup), options.Repeats, options);
        double s = MirrorSetup.Median(ts);
        var row = MirrorSetup.Common(Name, options, ts);
        row["batch"] = 1;
        row["prompt_len"] = promptLen;
        row["new_tokens"] = newTokens;
        row["s_per_generate"] = Math.Round(s, 6);
        row["s_per_step"] = Math.Round(s, 6);
        row["tok_per_s"] = Math.Round(newTokens / s, 2);
        row["ms_per_token"] = Math.Round(1000 * s / newTokens, 3);
        row["peak_rss_mb"] = MirrorSetup.PeakRssMb();
        report(row);
    }
}
