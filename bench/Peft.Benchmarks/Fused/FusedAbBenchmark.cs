using System.Diagnostics;
using Peft.Benchmarks.HfMirror;
using Peft.Core;
using Peft.Core.Torch.Cuda;
using Peft.Transformers;
using Peft.Transformers.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Benchmarks.Fused;

/// <summary>
/// The Llama-1B-shape LoRA step (lora_step's setting: bf16, 8 × 512, LoRA r8 on q/v, AdamW) with each family of fused
/// kernels switched off in turn, in ONE process on one model (<see cref="FusedKernels.EnvVar"/> is read on every
/// dispatch): all fused, without rotary, without the LoRA tail, without both (the RMSNorm / SwiGLU kernels only),
/// without the fused AdamW, and all eager (<c>PEFT_FUSED_AB_MODEL=opt125m</c>: OPT-125m's step instead). The settings alternate in rounds of <c>--repeats</c> steps each (after one warm-up block per setting),
/// so host drift hits every setting alike; reports the median step time per setting and the per-round medians.
/// <c>dotnet Peft.Benchmarks.dll fused_ab --device cuda [--repeats 5]</c>; rounds: 4 (<c>--quick</c>: 2).
/// </summary>
public sealed class FusedAbBenchmark : IBenchmark
{
    private static readonly (string Name, string Value)[] Settings =
    [
        ("all_fused", "1"), ("no_rotary", "-rotary"), ("no_lora_tail", "-lora_tail"),
        ("rmsnorm_swiglu_only", "-rotary,-lora_tail"), ("no_adamw", "-adamw"), ("eager", "0"),
    ];

    // PEFT_FUSED_AB_MODEL=opt125m: OPT-125m's LoRA step instead (LayerNorm / ReLU: of the families only the LoRA tail
    // and AdamW apply there; its eager step is host-bound, where a custom autograd node's host cost can outweigh a
    // saved kernel)
    private static string ModelName => Environment.GetEnvironmentVariable("PEFT_FUSED_AB_MODEL") is { Length: > 0 } m ? m : "llama1b";

    /// <inheritdoc />
    public string Name => "fused_ab";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        if (options.Device != "cuda") throw new ArgumentException("fused_ab needs --device cuda");
        var o = options with { Model = ModelName, Dtype = "bf16" };
        int rounds = options.Quick ? 2 : 4, steps = Math.Max(1, options.Repeats);
        using var model = MirrorSetup.BuildModel(o);
        using var pm = PeftModel.GetPeftModel(model, MirrorSetup.Lora());
        pm.train();
        using var opt = MirrorSetup.Optimizer(pm);
        using var ids = MirrorSetup.RandomBatch(o);
        void Step()
        {
            using var scope = NewDisposeScope();
            var loss = pm.forward(new ModelInput { InputIds = ids, Labels = ids })!.Loss!;
            loss.backward();
            opt.Step();
            opt.ZeroGrad();
        }
        var old = Environment.GetEnvironmentVariable(FusedKernels.EnvVar);
        var times = Settings.ToDictionary(s => s.Name, _ => new List<double>());
        var perRound = Settings.ToDictionary(s => s.Name, _ => new List<double>());
        try
        {
            foreach (var (_, value) in Settings)
            {
                Environment.SetEnvironmentVariable(FusedKernels.EnvVar, value);
                for (int i = 0; i < options.Warmup; i++) Step();
            }
            for (int r = 0; r < rounds; r++)
            {
                foreach (var (name, value) in r % 2 == 0 ? Settings : Settings.Reverse())
                {
                    Environment.SetEnvironmentVariable(FusedKernels.EnvVar, value);
                    Step();
                    cuda.synchronize();
                    var block = new List<double>();
                    for (int i = 0; i < steps; i++)
                    {
                        var sw = Stopwatch.StartNew();
                        Step();
                        cuda.synchronize();
                        block.Add(sw.Elapsed.TotalMilliseconds);
                    }
                    times[name].AddRange(block);
                    perRound[name].Add(Math.Round(MirrorSetup.Median(block), 2));
                }
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable(FusedKernels.EnvVar, old);
        }
        var row = new Dictionary<string, object?> { ["case"] = Name, ["model"] = o.Model, ["rounds"] = rounds, ["steps_per_block"] = steps };
        foreach (var (name, _) in Settings)
        {
            row[name + "_ms"] = Math.Round(MirrorSetup.Median(times[name]), 2);
            row[name + "_rounds_ms"] = perRound[name].ToArray();
        }
        report(row);
    }
}
