using Peft.Core;
using Peft.Transformers;
using TorchSharp;

namespace Peft.Benchmarks;

/// <summary>
/// Loading and running OPT-125m- and Llama-1B-shaped random checkpoints in fp32 / bf16 / int8 / nf4 (double quant):
/// memory footprint, peak RSS growth while loading (Linux VmHWM, reset through /proc/self/clear_refs before each load)
/// against the final footprint plus the largest tensor, and prefill tokens/s. The checkpoint is written to a temp
/// folder in bfloat16 first. <c>--quick</c> uses a Llama of hidden 512 × 4 layers instead of the 1B shape.
/// For clean peaks run each case in a fresh process (memory freed by an earlier case stays in the process and hides
/// growth): <c>PEFT_QUANT_CASE=write</c> writes the checkpoints to <c>PEFT_QUANT_DIR</c>, then
/// <c>PEFT_QUANT_CASE=llama-1b-nf4</c> (shape-precision) loads only that case from there.
/// </summary>
public sealed class QuantizationBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "quantization";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        var tinyLlama = new LlamaConfig { VocabSize = 256, HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, MaxPositionEmbeddings = 256 };
        var shapes = new List<(string Name, PretrainedConfig Config, PretrainedConfig Tiny)>
        {
            ("opt-125m", new OPTConfig { VocabSize = 50272, HiddenSize = 768, NumAttentionHeads = 12, FfnDim = 3072, NumHiddenLayers = 12, MaxPositionEmbeddings = 2048, WordEmbedProjDim = 768 },
                new OPTConfig { VocabSize = 256, HiddenSize = 64, NumAttentionHeads = 4, FfnDim = 128, NumHiddenLayers = 2, MaxPositionEmbeddings = 256, WordEmbedProjDim = 64 }),
            options.Quick
                ? ("llama-512x4", new LlamaConfig { VocabSize = 32000, HiddenSize = 512, IntermediateSize = 1376, NumHiddenLayers = 4, NumAttentionHeads = 8, NumKeyValueHeads = 8, MaxPositionEmbeddings = 2048 }, tinyLlama)
                : ("llama-1b", new LlamaConfig { VocabSize = 128256, HiddenSize = 2048, IntermediateSize = 8192, NumHiddenLayers = 16, NumAttentionHeads = 32, NumKeyValueHeads = 8, MaxPositionEmbeddings = 4096, TieWordEmbeddings = true }, tinyLlama),
        };
        var precisions = new (string Name, FromPretrainedOptions Options)[]
        {
            ("fp32", new FromPretrainedOptions { Dtype = torch.ScalarType.Float32 }),
            ("bf16", new FromPretrainedOptions { Dtype = torch.ScalarType.BFloat16 }),
            ("int8", new FromPretrainedOptions { Dtype = torch.ScalarType.BFloat16, Quantization = new BitsAndBytesConfig { LoadIn8Bit = true } }),
            ("nf4", new FromPretrainedOptions
            {
                Dtype = torch.ScalarType.BFloat16,
                Quantization = new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitUseDoubleQuant = true, Bnb4BitComputeDtype = torch.ScalarType.BFloat16 },
            }),
        };
        var only = Environment.GetEnvironmentVariable("PEFT_QUANT_CASE");
        var root = Environment.GetEnvironmentVariable("PEFT_QUANT_DIR") ?? Path.Combine(Path.GetTempPath(), "peft-bench-quant");
        foreach (var (shape, config, tiny) in shapes)
        {
            var dir = Path.Combine(root, shape);
            if (only == "write")
            {
                WriteCheckpoint(config, dir);
                WriteCheckpoint(tiny, dir + "-tiny");
                continue;
            }
            if (only is not null && !only.StartsWith(shape + "-", StringComparison.Ordinal)) continue;
            if (only is not null && !File.Exists(Path.Combine(dir, "model.safetensors")))
                throw new FileNotFoundException($"{dir}: no checkpoint; run once with PEFT_QUANT_CASE=write (same PEFT_QUANT_DIR, same --quick).");
            long largest = only is null ? WriteCheckpoint(config, dir) : LargestTensorBytes(dir);
            try
            {
                if (only is null)
                    using (AutoModelForCausalLM.FromPretrained(dir, precisions[^1].Options)) { }   // warm-up: native libraries, allocator pools
                foreach (var (precision, loadOptions) in precisions)
                {
                    if (only is not null && only != $"{shape}-{precision}") continue;
                    var opts = loadOptions with { Device = options.Device == "cuda" ? torch.CUDA : torch.CPU };
                    // Warm-up on a tiny model of the same architecture and precision: the native code pages and pools
                    // a first load touches are then resident before the baseline, without a large freed heap.
                    if (only is not null)
                        using (var warm = AutoModelForCausalLM.FromPretrained(dir + "-tiny", opts)) PrefillTokensPerSecond(warm, options);
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    ResetPeak();
                    long before = Rss();
                    using var model = AutoModelForCausalLM.FromPretrained(dir, opts);
                    long peak = PeakRss() - before;
                    long footprint = model.GetMemoryFootprint();
                    double tps = PrefillTokensPerSecond(model, options);
                    report(new Dictionary<string, object?>
                    {
                        ["case"] = $"{shape}-{precision}", ["params"] = model.NumParameters(), ["footprint_bytes"] = footprint,
                        ["estimated_bytes"] = MemoryEstimator.WeightBytes(config, precision switch
                        {
                            "fp32" => WeightPrecision.Float32, "bf16" => WeightPrecision.BFloat16, "int8" => WeightPrecision.Int8, _ => WeightPrecision.Nf4,
                        }),
                        ["peak_rss_growth_bytes"] = peak, ["largest_tensor_bytes"] = largest,
                        ["peak_over_footprint_plus_tensor"] = (double)peak / (footprint + largest),
                        ["prefill_tokens_per_s"] = tps,
                    });
                }
            }
            finally
            {
                if (only is null) Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>Writes a random bf16 checkpoint of <paramref name="config"/> layer by layer; returns the largest tensor's fp32 bytes.</summary>
    private static long WriteCheckpoint(PretrainedConfig config, string dir)
    {
        using var model = AutoModelForCausalLM.FromConfig(config);
        model.to(torch.ScalarType.BFloat16);
        model.SavePretrained(dir);
        return model.parameters().Max(p => p.numel()) * 4;
    }

    private static long LargestTensorBytes(string dir)
    {
        using var f = Peft.Core.Safetensors.SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        return f.Tensors.Max(t => t.NumElements) * 4;
    }

    private static double PrefillTokensPerSecond(PreTrainedModel model, BenchmarkOptions options)
    {
        int batch = 1, seq = options.Quick ? 64 : 128;
        long vocab = Math.Min(1000, model.GetInputEmbeddings().weight!.shape[0]);
        using var ids = torch.randint(0, vocab, [batch, seq], dtype: torch.ScalarType.Int64, device: model.Device);
        using var mask = torch.ones([batch, seq], dtype: torch.ScalarType.Int64, device: model.Device);
        using var _ = torch.no_grad();
        double s = Timing.MedianSeconds(() =>
        {
            using var scope = torch.NewDisposeScope();
            model.forward(new ModelInput { InputIds = ids, AttentionMask = mask });
            if (model.Device.type == DeviceType.CUDA) torch.cuda.synchronize();
        }, Math.Max(1, options.Repeats));
        return batch * seq / s;
    }

    // Linux: "5" resets the peak resident set size (VmHWM) of the process (proc(5), clear_refs).
    private static void ResetPeak()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static long Rss() => StatusKb("VmRSS:") * 1024;

    private static long PeakRss() => StatusKb("VmHWM:") * 1024;

    private static long StatusKb(string key)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(key, StringComparison.Ordinal))
                return long.Parse(line[key.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        return 0;
    }
}
