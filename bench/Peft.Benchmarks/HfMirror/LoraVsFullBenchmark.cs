using System.Diagnostics;
using Peft.Core;
using Peft.Transformers;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// <c>lora_vs_full</c>: the mirror's <c>lora_step</c> and <c>full_step</c> (same model config, batch, optimizer) in ONE
/// process, on two models built from the same seed, alternating blocks of <c>--repeats</c> steps per round, so host
/// drift between processes (±25 % per round on the GPU machine) hits both alike. A third setting, <c>lora_bf16</c>, is
/// the LoRA step with adapters kept in the model's dtype (PEFT <c>autocast_adapter_dtype=False</c>: no float32 casts;
/// not PEFT's default, a diagnostic of what the float32 chain costs). Per setting: the median step wall time (one sync
/// per step, as hf_gpu_bench.py), the host time until forward / backward / optimizer+zero_grad return (no sync between
/// them: on a host-bound step that is where the host spends its time), and from a second block the phases synced one
/// by one. <c>dotnet Peft.Benchmarks.dll lora_vs_full --device cuda --dtype bf16 --model opt125m [--repeats 10]</c>;
/// rounds: 6 (<c>--quick</c>: 2).
/// </summary>
public sealed class LoraVsFullBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "lora_vs_full";

    private sealed record Setting(string Name, nn.Module<ModelInput, ModelOutput> Net, AdamW Opt)
    {
        public List<double> Wall { get; } = new();
        public List<double> HostFwd { get; } = new();
        public List<double> HostBwd { get; } = new();
        public List<double> HostOpt { get; } = new();
        public List<double> SyncFwd { get; } = new();
        public List<double> SyncBwd { get; } = new();
        public List<double> SyncOpt { get; } = new();
        public List<double> RoundMedians { get; } = new();
    }

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        int rounds = options.Quick ? 2 : 6, steps = Math.Max(1, options.Repeats);
        using var loraBase = MirrorSetup.BuildModel(options);
        using var lora = PeftModel.GetPeftModel(loraBase, MirrorSetup.Lora());
        using var halfBase = MirrorSetup.BuildModel(options);
        using var loraHalf = PeftModel.GetPeftModel(halfBase, MirrorSetup.Lora(), autocastAdapterDtype: false);
        using var full = MirrorSetup.BuildModel(options);
        var settings = new List<Setting>
        {
            new("lora", lora, MirrorSetup.Optimizer(lora)),
            new("full", full, MirrorSetup.Optimizer(full)),
            new("lora_bf16", loraHalf, MirrorSetup.Optimizer(loraHalf)),
        };
        foreach (var s in settings) s.Net.train();
        using var ids = MirrorSetup.RandomBatch(options);

        void Step(Setting s, bool syncPhases)
        {
            using var scope = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            var output = s.Net.forward(new ModelInput { InputIds = ids, Labels = ids })!;
            var loss = output.Loss!;
            output.Logits?.Dispose();
            if (syncPhases) MirrorSetup.Sync(options);
            double tf = sw.Elapsed.TotalSeconds;
            loss.backward();
            if (syncPhases) MirrorSetup.Sync(options);
            double tb = sw.Elapsed.TotalSeconds;
            s.Opt.Step();
            s.Opt.ZeroGrad();
            if (syncPhases) MirrorSetup.Sync(options);
            double to = sw.Elapsed.TotalSeconds;
            _ = loss.item<float>();                                  // the step's one sync (hf_gpu_bench.py syncs once per step)
            double wall = sw.Elapsed.TotalSeconds;
            if (syncPhases)
            {
                s.SyncFwd.Add(tf);
                s.SyncBwd.Add(tb - tf);
                s.SyncOpt.Add(to - tb);
            }
            else
            {
                s.Wall.Add(wall);
                s.HostFwd.Add(tf);
                s.HostBwd.Add(tb - tf);
                s.HostOpt.Add(to - tb);
            }
        }

        foreach (var s in settings)
            for (int i = 0; i < Math.Max(1, options.Warmup); i++) Step(s, syncPhases: false);
        foreach (var s in settings) { s.Wall.Clear(); s.HostFwd.Clear(); s.HostBwd.Clear(); s.HostOpt.Clear(); }
        for (int r = 0; r < rounds; r++)
        {
            foreach (var s in r % 2 == 0 ? settings : Enumerable.Reverse(settings))
            {
                int before = s.Wall.Count;
                for (int i = 0; i < steps; i++) Step(s, syncPhases: false);
                s.RoundMedians.Add(Math.Round(MirrorSetup.Median(s.Wall.Skip(before)) * 1e3, 3));
                for (int i = 0; i < steps; i++) Step(s, syncPhases: true);
            }
        }

        static double Ms(IEnumerable<double> xs) => Math.Round(MirrorSetup.Median(xs) * 1e3, 3);
        int tokens = MirrorSetup.Batch(options) * MirrorSetup.Seq(options);
        var row = MirrorSetup.Common(Name, options, settings[0].Wall.ToArray());
        row["batch"] = MirrorSetup.Batch(options);
        row["seq"] = MirrorSetup.Seq(options);
        row["rounds"] = rounds;
        foreach (var s in settings)
        {
            row[$"{s.Name}_ms"] = Ms(s.Wall);
            row[$"{s.Name}_tok_per_s"] = Math.Round(tokens / MirrorSetup.Median(s.Wall), 1);
            row[$"{s.Name}_round_ms"] = s.RoundMedians.ToArray();
            row[$"{s.Name}_host_ms"] = new[] { Ms(s.HostFwd), Ms(s.HostBwd), Ms(s.HostOpt) };
            row[$"{s.Name}_synced_ms"] = new[] { Ms(s.SyncFwd), Ms(s.SyncBwd), Ms(s.SyncOpt) };
        }
        row["columns"] = "*_host_ms: host time until forward / backward / optimizer+zero_grad returned (no sync between); *_synced_ms: the same phases synced one by one (other steps)";
        row["peak_rss_mb"] = MirrorSetup.PeakRssMb();
        report(row);
        foreach (var s in settings) s.Opt.Dispose();
    }
}
