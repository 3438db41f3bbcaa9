using System.Diagnostics;
using Peft.Core;
using Peft.Transformers;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// What the cases mirroring <c>shared/perf/hf_lora_bench.py</c> (CPU) and <c>hf_gpu_bench.py</c> (GPU) share: the
/// same random-init configs (OPT-125m; the Llama-1B shape), the same random token batch shape, LoRA r=8 α=16 on
/// q_proj/v_proj with lora_dropout 0, AdamW lr 2e-4 with torch's defaults (β 0.9/0.999, ε 1e-8, weight decay 0.01),
/// warm-up then timed iterations with medians, and the process's peak RSS (one case per process, like the Python side).
/// </summary>
internal static class MirrorSetup
{
    /// <summary>The device the options name.</summary>
    public static Device DeviceOf(BenchmarkOptions o) => o.Device == "cuda" ? CUDA : CPU;

    /// <summary>The compute dtype the options name (fp32 or bf16).</summary>
    public static ScalarType DtypeOf(BenchmarkOptions o) => o.Dtype switch
    {
        "fp32" or "float32" => ScalarType.Float32,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        _ => throw new ArgumentException($"--dtype '{o.Dtype}' is not one of fp32, bf16"),
    };

    /// <summary>Batch size: 8 unless overridden.</summary>
    public static int Batch(BenchmarkOptions o) => o.Batch > 0 ? o.Batch : 8;

    /// <summary>Sequence length: 128 on CPU (hf_lora_bench.py), 512 on CUDA (hf_gpu_bench.py) unless overridden.</summary>
    public static int Seq(BenchmarkOptions o) => o.Seq > 0 ? o.Seq : o.Device == "cuda" ? 512 : 128;

    /// <summary>
    /// The model config. opt125m: facebook/opt-125m's graph (dropout 0.1 as hf_lora_bench.py; 0.0 on CUDA as
    /// hf_gpu_bench.py). llama1b: hf_gpu_bench.py's Llama shape (h2048, 16 layers, 32 heads, 8 KV heads, ffn 8192).
    /// </summary>
    /// <param name="o">The options (model, device).</param>
    /// <param name="dropout">Overrides the model's dropout (OPT: <c>dropout</c>; Llama: <c>attention_dropout</c>); null = the mirror's.</param>
    public static PretrainedConfig Config(BenchmarkOptions o, double? dropout = null) => o.Model switch
    {
        "opt125m" => new OPTConfig
        {
            VocabSize = 50272, HiddenSize = 768, NumHiddenLayers = 12, FfnDim = 3072, NumAttentionHeads = 12, MaxPositionEmbeddings = 2048,
            WordEmbedProjDim = 768, Dropout = dropout ?? (o.Device == "cuda" ? 0.0 : 0.1), TieWordEmbeddings = true,
        },
        "llama1b" => new LlamaConfig
        {
            VocabSize = 32000, HiddenSize = 2048, IntermediateSize = 8192, NumHiddenLayers = 16, NumAttentionHeads = 32, NumKeyValueHeads = 8,
            MaxPositionEmbeddings = 4096, TieWordEmbeddings = false, AttentionDropout = dropout ?? 0.0,
        },
        // OPT-125m's graph (12 layers, 12 heads, tied head) at tiny widths: a step's kernels cost next to nothing, so its time
        // is the stack's host cost per op (the regime of the eager OPT-125m step on a GPU); bench/py/hf_host_step.py
        "opt_tiny" => new OPTConfig
        {
            VocabSize = 512, HiddenSize = 48, NumHiddenLayers = 12, FfnDim = 96, NumAttentionHeads = 12, MaxPositionEmbeddings = 2048,
            WordEmbedProjDim = 48, Dropout = dropout ?? 0.0, TieWordEmbeddings = true,
        },
        _ => throw new ArgumentException($"--model '{o.Model}' is not one of opt125m, llama1b, opt_tiny"),
    };

    /// <summary>Vocabulary size of <see cref="Config"/> (random ids are drawn below it).</summary>
    public static int Vocab(BenchmarkOptions o) => o.Model switch { "llama1b" => 32000, "opt_tiny" => 512, _ => 50272 };

    /// <summary>A random-init causal LM on the requested device and dtype (seeded like the Python side).</summary>
    public static PreTrainedModel BuildModel(BenchmarkOptions o, double? dropout = null)
    {
        manual_seed(o.Seed);
        var model = AutoModelForCausalLM.FromConfig(Config(o, dropout));
        model.to(DtypeOf(o));
        model.to(DeviceOf(o));
        return model;
    }

    /// <summary>hf_lora_bench.py's LoRA config: r=8, α=16, q_proj/v_proj, dropout 0 (or <paramref name="dropout"/>), CAUSAL_LM.</summary>
    public static LoraConfig Lora(double dropout = 0.0) => new()
    {
        R = 8, LoraAlpha = 16, TargetModules = new[] { "q_proj", "v_proj" }, LoraDropout = dropout, TaskType = TaskType.CausalLM,
    };

    /// <summary>
    /// The mirror's optimizer: torch.optim.AdamW(lr 2e-4, weight decay 0.01) over the trainable parameters of
    /// <paramref name="net"/> in named_parameters order (<paramref name="multiTensor"/>: torch's foreach form; null =
    /// torch's default, multi-tensor on CUDA and per parameter on the CPU).
    /// </summary>
    public static AdamW Optimizer(nn.Module net, bool? multiTensor = null)
    {
        var named = net.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        var group = new ParamGroup(named.Select(p => p.name).ToList(), named.Select(p => p.parameter).ToList(), WeightDecay: 0.01) { Lr = 2e-4 };
        return new AdamW([group], @foreach: multiTensor);
    }

    /// <summary>Random token ids [batch, seq] in [3, vocab), like <c>random_batch</c>.</summary>
    public static Tensor RandomBatch(BenchmarkOptions o)
    {
        var g = new Generator((ulong)(o.Seed + 1));
        return randint(3, Vocab(o), [Batch(o), Seq(o)], generator: g, dtype: ScalarType.Int64).to(DeviceOf(o));
    }

    /// <summary>
    /// <paramref name="rows"/> rows of <paramref name="seq"/> random ids in [3, vocab) as a dataset with <c>input_ids</c>
    /// and <c>labels</c> (= the ids), drawn from generator seed <c>o.Seed + seedOffset</c> (the Trainer cases).
    /// </summary>
    public static Peft.Datasets.Dataset RandomRows(BenchmarkOptions o, int rows, int seq, int seedOffset)
    {
        var g = new Generator((ulong)(o.Seed + seedOffset));
        using var ids = randint(3, Vocab(o), [rows, seq], generator: g, dtype: ScalarType.Int64);
        var data = ids.data<long>().ToArray();
        var list = Enumerable.Range(0, rows).Select(r => data.AsSpan(r * seq, seq).ToArray()).ToList();
        return Peft.Datasets.Dataset.FromDict(new Dictionary<string, System.Collections.IList>(StringComparer.Ordinal)
        {
            ["input_ids"] = list, ["labels"] = list.Select(r => (long[])r.Clone()).ToList(),
        });
    }

    /// <summary>Waits for the device (CUDA) so wall-clock times cover the work.</summary>
    public static void Sync(BenchmarkOptions o)
    {
        if (o.Device == "cuda") cuda.synchronize();
    }

    /// <summary>Runs <paramref name="warmup"/> untimed and <paramref name="iters"/> timed calls; returns the timed seconds.</summary>
    public static double[] Time(Action fn, int warmup, int iters, BenchmarkOptions o)
    {
        for (int i = 0; i < warmup; i++) fn();
        Sync(o);
        var ts = new double[Math.Max(1, iters)];
        for (int i = 0; i < ts.Length; i++)
        {
            var sw = Stopwatch.StartNew();
            fn();
            Sync(o);
            ts[i] = sw.Elapsed.TotalSeconds;
        }
        return ts;
    }

    /// <summary>Median of <paramref name="xs"/> (mean of the middle two for even counts, like Python's statistics.median).</summary>
    public static double Median(IEnumerable<double> xs)
    {
        var a = xs.OrderBy(x => x).ToArray();
        if (a.Length == 0) return double.NaN;
        return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
    }

    /// <summary>Peak resident set size of this process in MB (VmHWM; what Python's ru_maxrss reports).</summary>
    public static double PeakRssMb()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                return Math.Round(long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0, 1);
        return double.NaN;
    }

    /// <summary>Current resident set size in MB (VmRSS).</summary>
    public static double RssMb()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return Math.Round(long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0, 1);
        return double.NaN;
    }

    /// <summary>Minor page faults of this process so far (/proc/self/stat field 10; Python: ru_minflt).</summary>
    public static long MinorFaults()
    {
        var stat = File.ReadAllText("/proc/self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture);    // field 10 counted from pid = 1
    }

    [System.Runtime.InteropServices.DllImport("libc.so.6", EntryPoint = "mallinfo2")]
    private static extern MallInfo2 mallinfo2();

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct MallInfo2
    {
        public nuint Arena, Ordblks, Smblks, Hblks, Hblkhd, Usmblks, Fsmblks, Uordblks, Fordblks, Keepcost;
    }

    /// <summary>glibc's heap statistics (mallinfo2, all arenas) in MB: heap, in use, free, top, mmapped.</summary>
    public static string Mallinfo()
    {
        var m = mallinfo2();
        static string Mb(nuint b) => (b / 1048576.0).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
        return $"heap {Mb(m.Arena)} (in use {Mb(m.Uordblks)}, free {Mb(m.Fordblks)}, top {Mb(m.Keepcost)}), mmapped {Mb(m.Hblkhd)} in {m.Hblks}";
    }

    /// <summary>With <c>PEFT_RSS_TRACE=1</c>: VmRSS / VmHWM and <see cref="Mallinfo"/> after <paramref name="phase"/>, to stderr.</summary>
    public static void TraceRss(string phase)
    {
        if (RssTrace)
        {
            var st = TorchSharp.DisposeScopeManager.Statistics.TensorStatistics;
            Console.Error.WriteLine($"rss {phase}: {RssMb()} MB, hwm {PeakRssMb()} MB, {Mallinfo()}, gc {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)}, tensors live {st.ThreadTotalLiveCount} created {st.CreatedOutsideScopeCount}+{st.CreatedInScopeCount} disposed outside {st.DisposedOutsideScopeCount}");
        }
    }

    private static readonly bool RssTrace = Environment.GetEnvironmentVariable("PEFT_RSS_TRACE") == "1";

    private static readonly bool MemTrace = Environment.GetEnvironmentVariable("PEFT_MEM_TRACE") == "1";

    [System.Runtime.InteropServices.DllImport("libcuda.so.1", EntryPoint = "cuMemGetInfo_v2")]
    private static extern int cuMemGetInfo(out nuint free, out nuint total);

    /// <summary>
    /// With <c>PEFT_MEM_TRACE=1</c> on CUDA: the device's used memory (driver <c>cuMemGetInfo</c>: total − free, i.e. the
    /// CUDA context plus what the caching allocator has reserved, device-wide) after a sync, to stderr as
    /// <c>mem PHASE: N MiB</c>; bench/py/hf_mem_trace.py prints the same line for the Python side (plus torch's own counters).
    /// </summary>
    public static void TraceDeviceMemory(BenchmarkOptions o, string phase)
    {
        if (!MemTrace || o.Device != "cuda") return;
        cuda.synchronize();
        if (cuMemGetInfo(out var free, out var total) == 0)
            Console.Error.WriteLine($"mem {phase}: {(total - free) / 1048576} MiB");
    }

    /// <summary>The fields every mirror case reports.</summary>
    public static Dictionary<string, object?> Common(string caseName, BenchmarkOptions o, double[] ts) => new()
    {
        ["case"] = caseName, ["model"] = o.Model, ["dtype"] = o.Dtype, ["threads"] = TorchSharp.torch.get_num_threads(),
        ["median_s"] = Math.Round(Median(ts), 6), ["min_s"] = Math.Round(ts.Min(), 6), ["max_s"] = Math.Round(ts.Max(), 6),
        ["iters"] = ts.Length, ["all_s"] = ts.Select(t => Math.Round(t, 4)).ToArray(),
        ["mkl_path"] = Peft.Core.Torch.MklFastPath.Describe(),
    };
}
