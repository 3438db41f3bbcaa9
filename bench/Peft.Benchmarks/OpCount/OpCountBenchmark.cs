using System.Diagnostics;
using Peft.Benchmarks.HfMirror;
using Peft.Core;
using Peft.Transformers;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Benchmarks.OpCount;

/// <summary>
/// <c>op_count</c>: native TorchSharp calls (≈ ATen ops; on CUDA ≈ kernel launches) per training step and per decoded
/// token, and host time per step / token, on tiny models with the layer structure of the GPU benchmark's models
/// (OPT-125m: 12 layers, 12 heads; Llama-1B: 16 layers, 4:1 grouped KV heads) but width 64 and vocabulary 1000, so
/// per-op overhead dominates as it does on the GPU. Needs the counting shim (<c>bench/opcount/build-shim.sh</c>;
/// <c>PEFT_OPCOUNT_LIB</c>, <c>PEFT_OPCOUNT_REAL</c>); without it only the times are reported. Cases: full_step with
/// the per-parameter (<c>foreach=false</c>) and multi-tensor (<c>foreach=true</c>, the CUDA default) AdamW,
/// lora_step (multi-tensor AdamW), generate (greedy, cached, batch 1, 16-token prompt; per token = the difference
/// between 64 and 32 new tokens / 32).
/// </summary>
public sealed class OpCountBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "op_count";

    private static PretrainedConfig Tiny(string model) => model switch
    {
        "llama1b" => new LlamaConfig
        {
            VocabSize = 1000, HiddenSize = 64, IntermediateSize = 256, NumHiddenLayers = 16, NumAttentionHeads = 8, NumKeyValueHeads = 2,
            MaxPositionEmbeddings = 4096, TieWordEmbeddings = false,
        },
        _ => new OPTConfig
        {
            VocabSize = 1000, HiddenSize = 64, NumHiddenLayers = 12, FfnDim = 256, NumAttentionHeads = 4, MaxPositionEmbeddings = 2048,
            WordEmbedProjDim = 64, Dropout = 0.0, TieWordEmbeddings = true,
        },
    };

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        foreach (var model in new[] { "opt125m", "llama1b" })
        {
            report(Step(options, model, lora: false, multiTensor: false));
            report(Step(options, model, lora: false, multiTensor: true));
            report(Step(options, model, lora: true, multiTensor: true));
            report(Generate(options, model));
        }
    }

    private static PreTrainedModel Build(string model, BenchmarkOptions o)
    {
        manual_seed(o.Seed);
        var m = AutoModelForCausalLM.FromConfig(Tiny(model));
        m.to(MirrorSetup.DeviceOf(o));
        return m;
    }

    private static Dictionary<string, object?> Step(BenchmarkOptions o, string modelName, bool lora, bool multiTensor)
    {
        using var model = Build(modelName, o);
        using var pm = lora ? PeftModel.GetPeftModel(model, MirrorSetup.Lora()) : null;
        nn.Module<ModelInput, ModelOutput> net = pm is null ? model : pm;
        net.train();
        var named = ((nn.Module)net).named_parameters().Where(p => p.parameter.requires_grad).ToList();
        using var opt = MirrorSetup.Optimizer(net, multiTensor);
        using var ids = randint(3, 1000, [2, 32], dtype: ScalarType.Int64).to(MirrorSetup.DeviceOf(o));
        void Run()
        {
            using var scope = NewDisposeScope();
            var loss = net.forward(new ModelInput { InputIds = ids, Labels = ids })!.Loss!;
            loss.backward();
            opt.Step();
            opt.ZeroGrad();
            _ = loss.item<float>();
        }
        var row = Measure(o, Run, per: 1);
        row["case"] = lora ? "lora_step" : "full_step";
        row["optimizer"] = multiTensor ? "adamw foreach (multi-tensor)" : "adamw per parameter";
        row["trainable_tensors"] = named.Count;
        row["model"] = "tiny-" + modelName;
        return row;
    }

    internal static Dictionary<string, object?> Generate(BenchmarkOptions o, string modelName)
    {
        using var model = Build(modelName, o);
        model.eval();
        using var prompt = randint(3, 1000, [1, 16], dtype: ScalarType.Int64).to(MirrorSetup.DeviceOf(o));
        using var mask = ones_like(prompt);
        GenerationConfig Config(int n) => new() { MaxNewTokens = n, MinNewTokens = n, UseCache = true, DoSample = false };
        void Gen(int n)
        {
            using var outIds = model.Generate(prompt, mask, Config(n));
        }
        // per token: (64 new tokens) − (32 new tokens), so the prompt step and set-up cancel
        var row = Measure(o, () => Gen(64), per: 32, baseline: () => Gen(32));
        row["case"] = "generate_per_token";
        row["model"] = "tiny-" + modelName;
        return row;
    }

    private static Dictionary<string, object?> Measure(BenchmarkOptions o, Action run, double per, Action? baseline = null)
    {
        for (int i = 0; i < Math.Max(1, o.Warmup); i++)
        {
            run();
            baseline?.Invoke();
        }
        int reps = Math.Max(3, o.Repeats);
        var times = new List<double>();
        IReadOnlyList<(string Name, double Calls)>? diff = null;
        for (int i = 0; i < reps; i++)
        {
            ulong[]? b0 = null, b1 = null;
            double tb = 0;
            if (baseline is not null)
            {
                b0 = OpCounter.Enabled ? OpCounter.Snapshot() : null;
                var swb = Stopwatch.StartNew();
                baseline();
                MirrorSetup.Sync(o);
                tb = swb.Elapsed.TotalSeconds;
                b1 = OpCounter.Enabled ? OpCounter.Snapshot() : null;
            }
            var c0 = OpCounter.Enabled ? OpCounter.Snapshot() : null;
            var sw = Stopwatch.StartNew();
            run();
            MirrorSetup.Sync(o);
            times.Add((sw.Elapsed.TotalSeconds - tb) / per);
            if (c0 is not null)
            {
                var delta = OpCounter.Delta(c0, OpCounter.Snapshot());
                if (b0 is not null && b1 is not null)
                {
                    var d0 = OpCounter.Delta(b0, b1);
                    for (int k = 0; k < delta.Length; k++) delta[k] -= d0[k];   // run − baseline (a finalizer's disposals can make one negative)
                }
                diff = OpCounter.Named(delta, per);
            }
        }
        var row = new Dictionary<string, object?>
        {
            ["device"] = o.Device,
            ["host_ms_median"] = Math.Round(1000 * MirrorSetup.Median(times), 3),
            ["host_ms_all"] = times.Select(t => Math.Round(1000 * t, 3)).ToArray(),
            ["counted"] = OpCounter.Enabled,
        };
        if (diff is not null)
        {
            var (total, ops, kernels) = OpCounter.Classify(diff);
            row["native_calls"] = Math.Round(total, 1);
            row["ops"] = Math.Round(ops, 1);
            row["non_view_ops"] = Math.Round(kernels, 1);
            row["top"] = diff.Take(60).ToDictionary(d => d.Name, d => Math.Round(d.Calls, 2));
        }
        return row;
    }
}

/// <summary>
/// <c>op_count_generate</c>: only the decoding rows of <see cref="OpCountBenchmark"/> (native calls, ops and non-view
/// ops per decoded token, both model shapes), for measuring decode changes without the training steps.
/// </summary>
public sealed class OpCountGenerateBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "op_count_generate";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        foreach (var model in new[] { "opt125m", "llama1b" }) report(OpCountBenchmark.Generate(options, model));
    }
}
