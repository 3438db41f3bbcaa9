using System.Diagnostics;
using System.Text.Json;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Transformers;
using TorchSharp;

namespace Peft.Benchmarks;

/// <summary>
/// Loading OPT-125m- and Llama-1B-shaped random checkpoints (bf16 files) in fp32 / bf16 / int8 / nf4 (double quant):
/// peak resident set while loading against issue 13's bound — final model size + one (largest) tensor + 10 % — the
/// final footprint, and forward tokens/s. Each case runs in a fresh child process (memory freed by an earlier case
/// would hide growth), warmed up on a tiny model of the same architecture and precision first; peak = VmHWM after the
/// load − VmRSS before it (VmHWM reset through /proc/self/clear_refs). The largest tensor is counted in the dtype it
/// is loaded in (bf16 for nf4 / int8: the embeddings and head stay bf16). Checkpoints are written once, tensor by
/// tensor (no model is materialised), to <c>PEFT_LOAD_DIR</c> (default $TMPDIR/peft-bench-load) and deleted at the end
/// unless <c>PEFT_LOAD_KEEP=1</c>. <c>--quick</c>: a Llama of hidden 512 × 4 layers instead of the 1B shape.
/// <c>PEFT_LOAD_TRACE=1</c> writes VmRSS / VmHWM / RssAnon / RssFile after every tensor to stderr.
/// <c>PEFT_LOAD_ONLY=llama-1b-nf4,...</c> runs only those cases.
/// </summary>
public sealed class LoadBenchmark : IBenchmark
{
    private const string ChildCase = "PEFT_LOAD_CASE";

    /// <inheritdoc />
    public string Name => "load";

    private static readonly string[] Precisions = ["fp32", "bf16", "int8", "nf4"];

    private static IReadOnlyList<(string Name, PretrainedConfig Config, PretrainedConfig Tiny)> Shapes(bool quick)
    {
        var tinyLlama = new LlamaConfig { VocabSize = 256, HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, MaxPositionEmbeddings = 256, TieWordEmbeddings = false };
        return
        [
            ("opt-125m", new OPTConfig { VocabSize = 50272, HiddenSize = 768, NumAttentionHeads = 12, FfnDim = 3072, NumHiddenLayers = 12, MaxPositionEmbeddings = 2048, WordEmbedProjDim = 768 },
                new OPTConfig { VocabSize = 256, HiddenSize = 64, NumAttentionHeads = 4, FfnDim = 128, NumHiddenLayers = 2, MaxPositionEmbeddings = 256, WordEmbedProjDim = 64 }),
            quick
                ? ("llama-512x4", new LlamaConfig { VocabSize = 32000, HiddenSize = 512, IntermediateSize = 1376, NumHiddenLayers = 4, NumAttentionHeads = 8, NumKeyValueHeads = 8, MaxPositionEmbeddings = 2048, TieWordEmbeddings = false }, tinyLlama)
                // Llama-3.2-1B's shape, untied head (issue 13): hidden 2048, 16 layers, 32 heads / 8 KV heads, ffn 8192.
                : ("llama-1b", new LlamaConfig { VocabSize = 128256, HiddenSize = 2048, IntermediateSize = 8192, NumHiddenLayers = 16, NumAttentionHeads = 32, NumKeyValueHeads = 8, MaxPositionEmbeddings = 4096, TieWordEmbeddings = false }, tinyLlama),
        ];
    }

    private static FromPretrainedOptions OptionsFor(string precision, string device)
    {
        var dev = device == "cuda" ? torch.CUDA : torch.CPU;
        return precision switch
        {
            "fp32" => new FromPretrainedOptions { Dtype = torch.ScalarType.Float32, Device = dev },
            "bf16" => new FromPretrainedOptions { Dtype = torch.ScalarType.BFloat16, Device = dev },
            "int8" => new FromPretrainedOptions { Dtype = torch.ScalarType.BFloat16, Device = dev, Quantization = new BitsAndBytesConfig { LoadIn8Bit = true } },
            "nf4" => new FromPretrainedOptions
            {
                Dtype = torch.ScalarType.BFloat16, Device = dev,
                Quantization = new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitUseDoubleQuant = true, Bnb4BitComputeDtype = torch.ScalarType.BFloat16 },
            },
            _ => throw new ArgumentException($"unknown precision '{precision}'", nameof(precision)),
        };
    }

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        var root = Environment.GetEnvironmentVariable("PEFT_LOAD_DIR") ?? Path.Combine(Path.GetTempPath(), "peft-bench-load");
        var child = Environment.GetEnvironmentVariable(ChildCase);
        if (child is not null)
        {
            RunCase(child, root, options, report);
            return;
        }
        var only = Environment.GetEnvironmentVariable("PEFT_LOAD_ONLY")?.Split(',', StringSplitOptions.RemoveEmptyEntries);
        bool keep = Environment.GetEnvironmentVariable("PEFT_LOAD_KEEP") == "1";
        foreach (var (shape, config, tiny) in Shapes(options.Quick))
        {
            var cases = Precisions.Select(p => $"{shape}-{p}").Where(c => only is null || only.Contains(c)).ToList();
            if (cases.Count == 0) continue;
            var dir = Path.Combine(root, shape);
            try
            {
                WriteRandomCheckpoint(config, dir);
                WriteRandomCheckpoint(tiny, dir + "-tiny");
                foreach (var c in cases) RunChild(c, report);
            }
            finally
            {
                if (!keep)
                {
                    if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
                    if (Directory.Exists(dir + "-tiny")) Directory.Delete(dir + "-tiny", recursive: true);
                }
            }
        }
    }

    /// <summary>Runs this benchmark for one case in a fresh process and relays its JSON line.</summary>
    private static void RunChild(string name, Action<IReadOnlyDictionary<string, object?>> report)
    {
        var exe = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(exe) == "dotnet") psi.ArgumentList.Add(typeof(LoadBenchmark).Assembly.Location);
        foreach (var a in Environment.GetCommandLineArgs().Skip(1)) psi.ArgumentList.Add(a);
        psi.Environment[ChildCase] = name;
        using var p = Process.Start(psi)!;
        string? line;
        while ((line = p.StandardOutput.ReadLine()) is not null)
        {
            if (!line.StartsWith('{')) continue;
            var row = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(line)!;
            if (row.GetValueOrDefault("benchmark").ValueKind != JsonValueKind.String || row["benchmark"].GetString() != "load") continue;
            report(row.Where(kv => kv.Key is not ("benchmark" or "device")).ToDictionary(kv => kv.Key, kv => (object?)kv.Value));
        }
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"load case {name} exited with {p.ExitCode}");
    }

    private static void RunCase(string name, string root, BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        var (shape, config, _) = Shapes(options.Quick).Single(s => name.StartsWith(s.Name + "-", StringComparison.Ordinal));
        var precision = name[(shape.Length + 1)..];
        var dir = Path.Combine(root, shape);
        var opts = OptionsFor(precision, options.Device);
        // Warm-up on a tiny model of the same architecture and precision: native code pages, thread pools and the
        // allocator's first arenas are resident before the baseline.
        using (var warm = AutoModelForCausalLM.FromPretrained(dir + "-tiny", opts)) TokensPerSecond(warm, options, 1);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Peft.Core.Torch.NativeHeap.Trim();
        ResetPeak();
        var before = Status();
        bool trace = Environment.GetEnvironmentVariable("PEFT_LOAD_TRACE") == "1";
        if (trace)
        {
            void Trace(string what)
            {
                var s = Status();
                Console.Error.WriteLine($"trace {what} rss={(s.Rss - before.Rss) / 1048576.0:F1} hwm={(s.Hwm - before.Rss) / 1048576.0:F1} anon={(s.Anon - before.Anon) / 1048576.0:F1} file={(s.File - before.File) / 1048576.0:F1} MB");
            }
            LoadObservers.Constructed.Value = _ => Trace("(constructed)");
            LoadObservers.TensorLoaded.Value = Trace;
        }
        var sw = Stopwatch.StartNew();
        using var model = AutoModelForCausalLM.FromPretrained(dir, opts);
        double loadSeconds = sw.Elapsed.TotalSeconds;
        LoadObservers.TensorLoaded.Value = null;
        LoadObservers.Constructed.Value = null;
        var after = Status();
        long peak = after.Hwm - before.Rss;
        long footprint = model.GetMemoryFootprint();
        long largest = LargestTensorBytes(dir, opts.Dtype!.Value);
        // On CUDA the weights are on the GPU: the bound applies to host memory only as "one tensor" (+10 %).
        long hostModel = options.Device == "cuda" ? 0 : footprint;
        double bound = 1.1 * (hostModel + largest);
        double tps = TokensPerSecond(model, options, Math.Max(1, options.Repeats));
        const double MB = 1048576.0;
        report(new Dictionary<string, object?>
        {
            ["case"] = name,
            ["params"] = model.NumParameters(),
            ["footprint_mb"] = footprint / MB,
            ["estimated_mb"] = MemoryEstimator.WeightBytes(config, precision switch
            {
                "fp32" => WeightPrecision.Float32, "bf16" => WeightPrecision.BFloat16, "int8" => WeightPrecision.Int8, _ => WeightPrecision.Nf4,
            }, otherDtype: opts.Dtype) / MB,
            ["largest_tensor_mb"] = largest / MB,
            ["peak_rss_mb"] = peak / MB,
            ["bound_mb"] = bound / MB,
            ["ratio"] = peak / bound,
            ["rss_after_mb"] = (after.Rss - before.Rss) / MB,
            ["rss_anon_after_mb"] = (after.Anon - before.Anon) / MB,
            ["rss_file_after_mb"] = (after.File - before.File) / MB,
            ["load_s"] = loadSeconds,
            ["forward_tokens"] = options.Seq > 0 ? options.Seq : options.Quick ? 64 : 128,
            ["tokens_per_s"] = tps,
        });
    }

    /// <summary>
    /// Writes a random checkpoint of <paramref name="config"/> in bfloat16 one tensor at a time (names and shapes from
    /// a meta-device skeleton; norms 1, biases 0, the rest N(0, 0.02)), unless the folder already holds one.
    /// </summary>
    internal static void WriteRandomCheckpoint(PretrainedConfig config, string dir)
    {
        var file = Path.Combine(dir, "model.safetensors");
        if (File.Exists(file)) return;
        Directory.CreateDirectory(dir);
        var shapes = new List<(string Name, long[] Shape)>();
        using (var skeleton = ModelFactory.BuildSkeleton(config, ModelTask.CausalLM))
        {
            foreach (var (k, v) in skeleton.state_dict()) shapes.Add((k, v.shape));
        }
        shapes.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        var infos = new List<SafetensorsTensorInfo>();
        long offset = 0;
        foreach (var (n, s) in shapes)
        {
            long bytes = s.Aggregate(1L, (x, y) => x * y) * 2;
            infos.Add(new SafetensorsTensorInfo(n, "BF16", s, offset, offset + bytes));
            offset += bytes;
        }
        var header = SafetensorsWriter.BuildHeader(infos, new Dictionary<string, string> { ["format"] = "pt" });
        var tmp = file + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            fs.Write(BitConverter.GetBytes((long)header.Length));
            fs.Write(header);
            var gen = new torch.Generator(1234);
            foreach (var (n, s) in shapes)
            {
                using var scope = torch.NewDisposeScope();
                var t = s.Length == 1
                    ? (n.EndsWith(".bias", StringComparison.Ordinal) ? torch.zeros(s, torch.ScalarType.BFloat16) : torch.ones(s, torch.ScalarType.BFloat16))
                    : torch.empty(s, torch.ScalarType.BFloat16).normal_(0, 0.02, gen);
                Peft.Core.Torch.TensorBytes.Visit(t, (_, span) => fs.Write(span));
            }
        }
        File.Move(tmp, file, overwrite: true);
        config.Save(dir);
    }

    private static long LargestTensorBytes(string dir, torch.ScalarType dtype)
    {
        using var f = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        long size = dtype switch { torch.ScalarType.Float32 => 4, torch.ScalarType.Float64 => 8, _ => 2 };
        return f.Tensors.Max(t => t.NumElements) * size;
    }

    /// <summary>Forward (prefill) tokens per second: batch 1 × <c>--seq</c> tokens (default 128, 64 with --quick), median of <paramref name="repeats"/>.</summary>
    private static double TokensPerSecond(PreTrainedModel model, BenchmarkOptions options, int repeats)
    {
        int batch = 1, seq = options.Seq > 0 ? options.Seq : options.Quick ? 64 : 128;
        long vocab = Math.Min(1000, model.GetInputEmbeddings().weight!.shape[0]);
        using var ids = torch.randint(0, vocab, [batch, seq], dtype: torch.ScalarType.Int64, device: model.Device);
        using var _ = torch.no_grad();
        double s = Timing.MedianSeconds(() =>
        {
            using var scope = torch.NewDisposeScope();
            model.forward(new ModelInput { InputIds = ids, LogitsToKeep = 1 });
            if (model.Device.type == DeviceType.CUDA) torch.cuda.synchronize();
        }, repeats);
        return batch * seq / s;
    }

    // Linux: "5" resets the peak resident set size (VmHWM) of the process (proc(5), clear_refs).
    private static void ResetPeak()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private readonly record struct ProcStatus(long Rss, long Hwm, long Anon, long File);

    private static ProcStatus Status()
    {
        long rss = 0, hwm = 0, anon = 0, file = 0;
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = Kb(line);
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) hwm = Kb(line);
            else if (line.StartsWith("RssAnon:", StringComparison.Ordinal)) anon = Kb(line);
            else if (line.StartsWith("RssFile:", StringComparison.Ordinal)) file = Kb(line);
        }
        return new ProcStatus(rss, hwm, anon, file);
    }

    private static long Kb(string line) =>
        long.Parse(line[(line.IndexOf(':') + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
}
