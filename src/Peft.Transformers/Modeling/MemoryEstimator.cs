using Peft.Core.Quantization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>Storage of the weights a <see cref="MemoryEstimator"/> assumes.</summary>
public enum WeightPrecision
{
    /// <summary>4 bytes per parameter.</summary>
    Float32,
    /// <summary>2 bytes per parameter.</summary>
    Float16,
    /// <summary>2 bytes per parameter.</summary>
    BFloat16,
    /// <summary>LLM.int8 linears (1 byte + 4 bytes per output row); the rest in float16.</summary>
    Int8,
    /// <summary>NF4 linears (½ byte + absmax per block of 64, double-quantised); the rest in bfloat16.</summary>
    Nf4,
}

/// <summary>How a model is fine-tuned, for <see cref="MemoryEstimator.Training"/>.</summary>
public enum FineTuningMethod
{
    /// <summary>Every parameter trained (weights, gradients and AdamW states for all).</summary>
    Full,
    /// <summary>LoRA adapters on a frozen base in the base's precision.</summary>
    Lora,
    /// <summary>LoRA adapters on an NF4 base (double quantisation).</summary>
    QLora,
}

/// <summary>Bytes of each part of a training or inference footprint.</summary>
/// <param name="Weights">Parameters and quantisation state.</param>
/// <param name="Gradients">Gradients of the trainable parameters.</param>
/// <param name="OptimizerStates">AdamW's two moments (float32) of the trainable parameters.</param>
/// <param name="Activations">Activations kept for backward for one batch.</param>
public sealed record MemoryEstimate(long Weights, long Gradients, long OptimizerStates, long Activations)
{
    /// <summary>The sum.</summary>
    public long Total => Weights + Gradients + OptimizerStates + Activations;

    /// <summary>GiB, for display.</summary>
    public static double GiB(long bytes) => bytes / (double)(1L << 30);
}

/// <summary>
/// Estimates memory from a config alone — the seed's "memory = parameters × bytes per parameter" (OPT-6.7B in fp16 ≈
/// 12.5 GiB) made exact for the weights: the architecture is built on the meta device (no storage), its parameters
/// are counted per layer, and each quantisable linear (every Linear but the output head, as the loader quantises) is
/// priced with the real packed layout (<see cref="Linear4bit"/>: ½ byte per weight + 1 byte absmax per block of 64 +
/// the nested state; <see cref="Linear8bit"/>: 1 byte + 4 bytes per row). Training adds gradients and AdamW states of
/// the trainable parameters and activations by the per-layer formula of Korthikanti et al. 2022
/// (s·b·h·(34 + 5·a·s/h) bytes at 16 bits), or with gradient checkpointing the layer inputs plus one layer.
/// </summary>
public static class MemoryEstimator
{
    private const long NestedBlock = FourBitCodec.NestedBlocksize;
    private const long JsonBytes = 160;           // the packed quant-state JSON per 4-bit layer, roughly

    private sealed record Summary((long All, long InQuantizable, IReadOnlyList<(long Out, long In, bool Bias)> Linears) Counts,
        IReadOnlyList<(string Path, long In, long Out)> AllLinears, (long Layers, long Heads, long Hidden, long Vocab) Dims);

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<PretrainedConfig, Dictionary<ModelTask, Summary>> Cache = new();

    /// <summary>Builds the skeleton once per config and task and keeps what the estimates need.</summary>
    private static Summary Summarize(PretrainedConfig config, ModelTask task)
    {
        ArgumentNullException.ThrowIfNull(config);
        var byTask = Cache.GetValue(config, _ => new Dictionary<ModelTask, Summary>());
        lock (byTask)
        {
            if (byTask.TryGetValue(task, out var cached)) return cached;
            using var model = ModelFactory.BuildSkeleton(config, task);
            var counts = CountOf(model);
            var linears = model.named_modules().Where(nm => nm.module is Linear)
                .Select(nm => (nm.name, ((Linear)nm.module).in_features, ((Linear)nm.module).out_features)).ToList();
            var d = model.Dimensions;
            var summary = new Summary(counts, linears, (d.NumLayers, d.NumAttentionHeads, d.HiddenSize, model.GetInputEmbeddings().weight!.shape[0]));
            byTask[task] = summary;
            return summary;
        }
    }

    /// <summary>Parameter counts of a model built from <paramref name="config"/>: all, and those in quantisable linears.</summary>
    public static (long All, long InQuantizable, IReadOnlyList<(long Out, long In, bool Bias)> Linears) Count(PretrainedConfig config, ModelTask task = ModelTask.CausalLM) =>
        Summarize(config, task).Counts;

    private static (long All, long InQuantizable, IReadOnlyList<(long Out, long In, bool Bias)> Linears) CountOf(PreTrainedModel model)
    {
        var skipped = ModelQuantizer.SkippedNames(model, new QuantizationSettings(null));
        var seen = new HashSet<IntPtr>();
        long all = 0;
        foreach (var p in model.parameters())
            if (seen.Add(p.Handle)) all += p.numel();
        var linears = new List<(long, long, bool)>();
        long inQuant = 0;
        foreach (var (path, m) in model.named_modules())
        {
            if (!ModelQuantizer.IsTarget(path, m, skipped)) continue;
            var w = m.named_parameters(recurse: false).First(p => p.name == "weight").parameter;
            bool bias = m.named_parameters(recurse: false).Any(p => p.name == "bias");
            var (o, i) = m is Linear ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0]);
            linears.Add((o, i, bias));
            inQuant += o * i;
        }
        return (all, inQuant, linears);
    }

    /// <summary>Bytes of the weights of <paramref name="config"/>'s model stored in <paramref name="precision"/> (HF <c>get_memory_footprint()</c> after loading so).</summary>
    public static long WeightBytes(PretrainedConfig config, WeightPrecision precision, ModelTask task = ModelTask.CausalLM, bool doubleQuant = true, ScalarType? otherDtype = null)
    {
        var (all, inQuant, linears) = Count(config, task);
        long other = all - inQuant;                                            // embeddings, norms, biases, head
        return precision switch
        {
            WeightPrecision.Float32 => all * 4,
            WeightPrecision.Float16 or WeightPrecision.BFloat16 => all * 2,
            WeightPrecision.Int8 => other * Bytes(otherDtype ?? ScalarType.Float16) + linears.Sum(l => l.Out * l.In + l.Out * 4 + 1),
            WeightPrecision.Nf4 => other * Bytes(otherDtype ?? ScalarType.BFloat16) + linears.Sum(l => Nf4Layer(l.Out * l.In, doubleQuant)),
            _ => throw new ArgumentOutOfRangeException(nameof(precision)),
        };
    }

    /// <summary>Bytes of one NF4 layer's packed weight and quant state (bias excluded) for <paramref name="n"/> weights in blocks of 64.</summary>
    public static long Nf4Layer(long n, bool doubleQuant, int blocksize = 64)
    {
        long blocks = (n + blocksize - 1) / blocksize;
        long packed = (n + 1) / 2;
        long state = doubleQuant ? blocks + 16 * 4 + ((blocks + NestedBlock - 1) / NestedBlock) * 4 + 256 * 4 : blocks * 4 + 16 * 4;
        return packed + state + JsonBytes;
    }

    /// <summary>
    /// Training memory for one optimizer step with a batch of <paramref name="batch"/> × <paramref name="sequence"/>
    /// tokens. <paramref name="loraR"/> and <paramref name="loraTargets"/> (module names; default q_proj, v_proj — PEFT's
    /// Llama default) size the adapters; adapters, their gradients and AdamW states are float32.
    /// </summary>
    public static MemoryEstimate Training(PretrainedConfig config, FineTuningMethod method, int batch, int sequence, bool gradientCheckpointing,
        ScalarType dtype = ScalarType.BFloat16, int loraR = 8, IReadOnlyCollection<string>? loraTargets = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sequence, 1);
        var precision = method == FineTuningMethod.QLora ? WeightPrecision.Nf4 : dtype == ScalarType.Float32 ? WeightPrecision.Float32 : WeightPrecision.BFloat16;
        long weights = WeightBytes(config, precision, otherDtype: dtype);
        long trainable, gradBytes;
        if (method == FineTuningMethod.Full)
        {
            trainable = Count(config).All;
            gradBytes = trainable * Bytes(dtype);
        }
        else
        {
            trainable = LoraParameters(config, loraR, loraTargets ?? ["q_proj", "v_proj"]);
            weights += trainable * 4;
            gradBytes = trainable * 4;
        }
        long optimizer = trainable * 8;
        return new MemoryEstimate(weights, gradBytes, optimizer, Activations(config, batch, sequence, gradientCheckpointing, dtype));
    }

    /// <summary>r · (in + out) for every linear whose name is in <paramref name="targets"/>.</summary>
    public static long LoraParameters(PretrainedConfig config, int r, IReadOnlyCollection<string> targets) =>
        Summarize(config, ModelTask.CausalLM).AllLinears
            .Where(l => targets.Contains(l.Path[(l.Path.LastIndexOf('.') + 1)..]))
            .Sum(l => r * (l.In + l.Out));

    /// <summary>Activation bytes kept for backward (Korthikanti et al. 2022 per layer; logits in float32 added).</summary>
    public static long Activations(PretrainedConfig config, int batch, int sequence, bool gradientCheckpointing, ScalarType dtype = ScalarType.BFloat16)
    {
        var d = Dimensions(config);
        double sbh = (double)sequence * batch * d.Hidden;
        double scale = Bytes(dtype) / 2.0;
        double perLayer = sbh * (34 + 5.0 * d.Heads * sequence / d.Hidden) * scale;
        double layers = gradientCheckpointing ? d.Layers * sbh * Bytes(dtype) + perLayer : d.Layers * perLayer;
        double logits = (double)batch * sequence * d.Vocab * 4 * 2;           // logits and their float32 softmax for the loss
        return (long)(layers + logits);
    }

    private static (long Layers, long Heads, long Hidden, long Vocab) Dimensions(PretrainedConfig config) => Summarize(config, ModelTask.CausalLM).Dims;

    private static long Bytes(ScalarType t) => t switch
    {
        ScalarType.Float32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 => 2,
        ScalarType.Float64 => 8,
        _ => 1,
    };
}
