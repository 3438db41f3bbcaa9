using System.Runtime.InteropServices;
using Peft.Core;
using Peft.Transformers;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Benchmarks;

/// <summary>
/// Gradient checkpointing on a deeper tiny Llama (16 layers, hidden 256, seq 512, batch 2; --quick: 4 layers, seq 128):
/// one training step (forward with labels, backward) with checkpointing off and on, for full fine-tuning and for LoRA
/// (q_proj/v_proj, r 8). Per case, medians over the repeats of: peak memory of a step and memory held at the end of
/// the forward (what autograd keeps for backward), on untimed steps; then step seconds, on and off timed in
/// alternating pairs. Summary row per mode: on/off ratios (the time ratio is the median of the per-pair ratios).
/// </summary>
/// <remarks>
/// Memory on CPU is measured in this process: before each step, freed heap pages go back to the OS (glibc
/// <c>malloc_trim</c>) and the kernel's resident high-water mark is reset (<c>/proc/self/clear_refs</c> ← 5), so
/// <c>peak_step_mb</c> = VmHWM − VmRSS at the start of the step (real resident memory, libtorch and .NET together);
/// <c>held_after_forward_mb</c> = glibc in-use bytes (<c>mallinfo2</c>: uordblks + hblkhd) after the forward minus
/// before it. On CUDA (TorchSharp 0.107 exposes neither allocator statistics nor <c>empty_cache</c>)
/// <c>peak_step_mb</c> is NVML's used device memory after the case minus before the first model was built: the
/// caching allocator's high-water mark, weights and gradients included. It never shrinks, so checkpointing-on runs
/// first and only the first training mode of a process is meaningful: on CUDA run one process per mode with
/// <c>PEFT_BENCH_TRAINING=full</c> and <c>=lora</c>.
/// </remarks>
public sealed class GradientCheckpointingBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "gradient-checkpointing";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        var device = options.Device == "cuda" ? CUDA : CPU;
        int layers = options.Quick ? 4 : 16, seq = options.Quick ? 128 : 512, batch = 2, hidden = 256, vocab = 1000;
        var config = new LlamaConfig
        {
            VocabSize = vocab, HiddenSize = hidden, IntermediateSize = 688, NumHiddenLayers = layers, NumAttentionHeads = 4,
            NumKeyValueHeads = 4, MaxPositionEmbeddings = seq,
        };
        using var ids = randint(0, vocab, [batch, seq], dtype: ScalarType.Int64, generator: new Generator(0)).to(device);
        var results = new Dictionary<(string, bool), Dictionary<string, object?>>();
        string[] modes = Environment.GetEnvironmentVariable("PEFT_BENCH_TRAINING") is { Length: > 0 } only ? [only] : ["full", "lora"];
        if (modes.Except(["full", "lora"]).Any()) throw new ArgumentException($"PEFT_BENCH_TRAINING must be full or lora, got '{modes[0]}'.");
        long deviceBaseline = device.type == DeviceType.CUDA ? Nvml.UsedBytes() : 0;
        foreach (var training in modes)
        {
            manual_seed(0);
            using var model = AutoModelForCausalLM.FromConfig(config);
            model.to(device);
            nn.Module<ModelInput, ModelOutput> trained = training == "lora"
                ? PeftModel.GetPeftModel(model, new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = new[] { "q_proj", "v_proj" }, TaskType = TaskType.CausalLM })
                : model;
            trained.train();
            var runner = new StepRunner(trained, model, new ModelInput { InputIds = ids, Labels = ids }, device.type == DeviceType.CUDA);
            // memory first, checkpointing on before off: the CUDA caching allocator's high-water mark only grows
            foreach (bool on in new[] { true, false })
            {
                var row = runner.Memory(on, options.Repeats, deviceBaseline);
                row["training"] = training;
                row["gradient_checkpointing"] = on;
                row["layers"] = layers; row["hidden"] = hidden; row["seq"] = seq; row["batch"] = batch;
                row["repeats"] = options.Repeats;
                results[(training, on)] = row;
            }
            var (onS, offS, ratio) = runner.InterleavedTimes(options.Repeats);
            results[(training, true)]["step_s"] = onS;
            results[(training, false)]["step_s"] = offS;
            report(results[(training, true)]);
            report(results[(training, false)]);
            report(new Dictionary<string, object?>
            {
                ["training"] = training, ["summary"] = "checkpointing on / off",
                ["peak_step_ratio"] = Ratio(results[(training, true)]["peak_step_mb"], results[(training, false)]["peak_step_mb"]),
                ["held_after_forward_ratio"] = Ratio(results[(training, true)]["held_after_forward_mb"], results[(training, false)]["held_after_forward_mb"]),
                ["step_time_ratio"] = ratio,
            });
        }
    }

    private static double? Ratio(object? a, object? b) => a is double x && b is double y && y != 0 ? x / y : null;

    /// <summary>Training steps of one model with checkpointing switched per step.</summary>
    private sealed class StepRunner(nn.Module<ModelInput, ModelOutput> trained, PreTrainedModel model, ModelInput input, bool cuda)
    {
        private long _held;

        private void Step(bool checkpointing)
        {
            if (checkpointing) model.GradientCheckpointingEnable(); else model.GradientCheckpointingDisable();
            using var scope = NewDisposeScope();
            foreach (var p in trained.parameters()) p.grad = null;
            long before = cuda ? 0 : ProcessMemory.HeapInUseBytes();
            var loss = trained.forward(input).Loss!;
            if (!cuda) _held = ProcessMemory.HeapInUseBytes() - before;
            loss.backward();
            if (cuda) torch.cuda.synchronize();
        }

        /// <summary>Peak memory of a step and memory held after its forward (medians of untimed steps).</summary>
        public Dictionary<string, object?> Memory(bool checkpointing, int repeats, long deviceBaseline)
        {
            Step(checkpointing);                                                       // warm-up
            var peaks = new List<double>();
            var helds = new List<double>();
            for (int i = 0; i < Math.Max(1, repeats) && !cuda; i++)
            {
                long start = ProcessMemory.ResetPeak();
                Step(checkpointing);
                peaks.Add((ProcessMemory.PeakRssBytes() - start) / 1048576.0);
                helds.Add(_held / 1048576.0);
            }
            if (cuda) peaks.Add((Nvml.UsedBytes() - deviceBaseline) / 1048576.0);
            return new Dictionary<string, object?>
            {
                ["peak_step_mb"] = Median(peaks),
                ["held_after_forward_mb"] = helds.Count > 0 ? Median(helds) : null,
                ["memory_measure"] = cuda ? "nvml device used after the case - before the first model" : "VmHWM - VmRSS after malloc_trim + clear_refs",
            };
        }

        /// <summary>
        /// Step seconds with checkpointing on and off, timed in alternating pairs (order flipped every pair) so that a
        /// shared machine's load drift hits both alike: (median on, median off, median of the per-pair ratios).
        /// </summary>
        public (double On, double Off, double Ratio) InterleavedTimes(int repeats)
        {
            var on = new List<double>();
            var off = new List<double>();
            var ratios = new List<double>();
            double Time(bool c)
            {
                var sw = System.Diagnostics.Stopwatch.StartNew();
                Step(c);
                return sw.Elapsed.TotalSeconds;
            }
            for (int i = 0; i < Math.Max(1, repeats); i++)
            {
                double a, b;
                if (i % 2 == 0) { a = Time(true); b = Time(false); } else { b = Time(false); a = Time(true); }
                on.Add(a); off.Add(b); ratios.Add(a / b);
            }
            foreach (var p in trained.parameters()) p.grad = null;
            return (Median(on), Median(off), Median(ratios));
        }
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToArray();
        return s[s.Length / 2];
    }

    /// <summary>Resident-memory readings of this process (Linux, glibc).</summary>
    private static class ProcessMemory
    {
        [StructLayout(LayoutKind.Sequential)]
        private struct MallInfo2
        {
            public nuint Arena, Ordblks, Smblks, Hblks, Hblkhd, Usmblks, Fsmblks, Uordblks, Fordblks, Keepcost;
        }

        [DllImport("libc", EntryPoint = "mallinfo2")]
        private static extern MallInfo2 MallInfo();

        [DllImport("libc", EntryPoint = "malloc_trim")]
        private static extern int MallocTrim(nuint pad);

        /// <summary>Bytes glibc malloc has handed out and not taken back (all arenas plus mmapped chunks).</summary>
        public static long HeapInUseBytes()
        {
            var m = MallInfo();
            return (long)(m.Uordblks + m.Hblkhd);
        }

        /// <summary>Returns freed heap pages to the OS, resets VmHWM, and returns VmRSS in bytes.</summary>
        public static long ResetPeak()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            MallocTrim(0);
            File.WriteAllText("/proc/self/clear_refs", "5");
            return StatusBytes("VmRSS:");
        }

        /// <summary>VmHWM in bytes.</summary>
        public static long PeakRssBytes() => StatusBytes("VmHWM:");

        private static long StatusBytes(string key)
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(key, StringComparison.Ordinal))
                    return long.Parse(line[key.Length..].Trim().Split(' ')[0]) * 1024;
            throw new InvalidOperationException($"/proc/self/status has no {key}");
        }
    }

    /// <summary>Used memory of GPU 0 through NVML (libnvidia-ml).</summary>
    private static class Nvml
    {
        [StructLayout(LayoutKind.Sequential)]
        private struct Memory
        {
            public ulong Total, Free, Used;
        }

        [DllImport("libnvidia-ml.so.1", EntryPoint = "nvmlInit_v2")]
        private static extern int Init();

        [DllImport("libnvidia-ml.so.1", EntryPoint = "nvmlDeviceGetHandleByIndex_v2")]
        private static extern int DeviceByIndex(uint index, out IntPtr device);

        [DllImport("libnvidia-ml.so.1", EntryPoint = "nvmlDeviceGetMemoryInfo")]
        private static extern int MemoryInfo(IntPtr device, out Memory memory);

        public static long UsedBytes()
        {
            Check(Init(), "nvmlInit_v2");
            Check(DeviceByIndex(0, out var d), "nvmlDeviceGetHandleByIndex_v2");
            Check(MemoryInfo(d, out var m), "nvmlDeviceGetMemoryInfo");
            return (long)m.Used;
        }

        private static void Check(int rc, string what)
        {
            if (rc != 0) throw new InvalidOperationException($"NVML {what} failed with code {rc}");
        }
    }
}
