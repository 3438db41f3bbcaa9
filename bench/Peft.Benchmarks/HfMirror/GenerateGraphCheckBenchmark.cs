using Peft.Core.Torch;
using Peft.Transformers;
using Peft.Transformers.Generation;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// Proof of CUDA-graph decoding on the <c>generate</c> benchmark's setting (batch 1, the same random 16-token prompt,
/// 128 new tokens on CUDA): greedy decoding with a captured graph per step (<c>cache_implementation = "static"</c>),
/// the same static path run eagerly (<c>PEFT_CUDA_GRAPHS=0</c>), and the dynamic cache. Asserts that the graph
/// produces exactly the eager static path's tokens (the same kernels, replayed), reports how many tokens agree with the
/// dynamic cache (bf16 attention over another key length may round differently), the max |logit diff| of the first
/// steps (graph vs dynamic, fed the same tokens), whether the graph was captured, and tok/s of all three.
/// <c>dotnet run -c Release --project bench/Peft.Benchmarks -- generate_graph_check --device cuda --dtype bf16 --model opt125m|llama1b</c>;
/// <c>--batch B</c> (default 1) decodes B prompts, left-padded by 0-3 tokens per row (row i: i mod 4 pads), so the
/// static mask's padding path runs under the graph too.
/// </summary>
public sealed class GenerateGraphCheckBenchmark : IBenchmark
{
    private const int LogitSteps = 8;

    /// <inheritdoc />
    public string Name => "generate_graph_check";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        using var model = MirrorSetup.BuildModel(options);
        model.eval();
        int promptLen = 16, newTokens = options.Device == "cuda" ? 128 : 64;
        var g = new Generator((ulong)(options.Seed + 2));
        int batch = Math.Max(1, options.Batch);
        using var prompt = randint(3, MirrorSetup.Vocab(options), [batch, promptLen], generator: g, dtype: ScalarType.Int64).to(MirrorSetup.DeviceOf(options));
        using var mask = ones_like(prompt);
        for (int i = 0; i < batch; i++)
        {
            if (i % 4 == 0) continue;
            mask[i, ..(i % 4)] = 0;                                                         // left padding
            prompt[i, ..(i % 4)] = 1;
        }
        var gen = new GenerationConfig { MaxNewTokens = newTokens, MinNewTokens = newTokens, UseCache = true, DoSample = false };
        var graphCfg = gen with { CacheImplementation = GenerationConfig.CacheStatic };
        var dynamicCfg = gen with { CacheImplementation = GenerationConfig.CacheDynamic };

        using var graphIds = model.Generate(prompt, mask, graphCfg);
        var failure = model.StaticDecodeHolder.GraphFailure;
        string? unavailable = CudaGraph.Unavailable;
        using var eagerIds = WithoutGraphs(() => model.Generate(prompt, mask, graphCfg));
        using var dynamicIds = model.Generate(prompt, mask, dynamicCfg);
        bool graphEqualsEager = graphIds.shape.SequenceEqual(eagerIds.shape) && graphIds.eq(eagerIds).all().item<bool>();
        long agree = graphIds.narrow(1, promptLen, newTokens).eq(dynamicIds.narrow(1, promptLen, newTokens)).sum().item<long>();
        double logitDiff = FirstStepsLogitDiff(model, graphIds, mask, promptLen, options);

        int warmup = Math.Max(1, options.Warmup), iters = options.Repeats;
        double Tps(Action a) => batch * newTokens / MirrorSetup.Median(MirrorSetup.Time(a, warmup, iters, options));
        double graphTps = Tps(() => model.Generate(prompt, mask, graphCfg).Dispose());
        double eagerTps = WithoutGraphs(() => Tps(() => model.Generate(prompt, mask, graphCfg).Dispose()));
        double dynamicTps = Tps(() => model.Generate(prompt, mask, dynamicCfg).Dispose());

        var row = MirrorSetup.Common(Name, options, [batch * newTokens / graphTps]);
        row["batch"] = batch;
        row["graph_available"] = unavailable ?? "yes";
        row["graph_failure"] = failure;
        row["graph_tokens_equal_static_eager"] = graphEqualsEager;
        row["graph_tokens_equal_dynamic"] = $"{agree}/{batch * newTokens}";
        row["max_abs_logit_diff_first_steps"] = logitDiff;
        row["logit_steps"] = LogitSteps;
        row["tok_per_s_graph"] = Math.Round(graphTps, 2);
        row["tok_per_s_static_eager"] = Math.Round(eagerTps, 2);
        row["tok_per_s_dynamic"] = Math.Round(dynamicTps, 2);
        row["tok_per_s"] = Math.Round(graphTps, 2);
        report(row);
        if (!graphEqualsEager) throw new InvalidOperationException("generate_graph_check: the CUDA graph's tokens differ from the eager static path's");
    }

    // max |logits| difference between the static path (graph on CUDA) and the dynamic cache over the first steps, both
    // fed the graph's own tokens.
    private static double FirstStepsLogitDiff(PreTrainedModel model, Tensor ids, Tensor promptMask, int promptLen, BenchmarkOptions options)
    {
        var device = MirrorSetup.DeviceOf(options);
        long rows = ids.shape[0];
        using var state = new StaticDecodeState(rows, StaticDecoding.Capacity(ids.shape[1]), ids.device, useGraph: device.type == TorchSharp.DeviceType.CUDA);
        using var mask = cat([promptMask, ones(rows, ids.shape[1] - promptLen, ScalarType.Int64, ids.device)], 1);   // [B, total]
        using var dynamicStepper = new ModelStepper(model, useCache: true);
        using var staticStepper = new ModelStepper(model, useCache: true, state);
        double worst = 0;
        using var _ = no_grad();
        for (int t = promptLen; t < promptLen + LogitSteps; t++)
        {
            using var scope = NewDisposeScope();
            var prefix = ids.narrow(1, 0, t);
            var m = rows == 1 ? null : mask.narrow(1, 0, t);
            var a = dynamicStepper.Forward(prefix, m);
            var b = staticStepper.Forward(prefix, m);
            worst = Math.Max(worst, a.sub(b).abs().max().item<float>());
        }
        return worst;
    }

    private static T WithoutGraphs<T>(Func<T> run)
    {
        var old = Environment.GetEnvironmentVariable(StaticDecoding.EnvVar);
        Environment.SetEnvironmentVariable(StaticDecoding.EnvVar, "0");
        try { return run(); }
        finally { Environment.SetEnvironmentVariable(StaticDecoding.EnvVar, old); }
    }
}
