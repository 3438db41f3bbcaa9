using Peft.Core;
using Peft.Transformers;
using TorchSharp;

namespace Peft.Benchmarks;

/// <summary>
/// GPU check of <c>device_map</c> loading (issue 13): a random Llama (hidden 1024, 8 layers, float32) is loaded
/// (a) whole on cuda:0, (b) "sequential" with <c>MaxMemory</c> capping cuda:0 at half the model — the remaining layers
/// must spill to the CPU —, (c) "auto" with the driver's free memory (all on the GPUs), (d) NF4 "sequential" with the
/// same cap. Each line reports the bytes per device, the decoder layers per device and the logits' max |diff| / cosine
/// against (a) (for (d): against NF4 on cuda:0 alone). Needs CUDA; <c>--device cuda</c>.
/// </summary>
public sealed class DeviceMapLoadBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "device_map_load";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        if (!torch.cuda.is_available()) throw new InvalidOperationException("device_map_load needs CUDA (--device cuda on the GPU machine).");
        var config = new LlamaConfig { VocabSize = 32000, HiddenSize = 1024, IntermediateSize = 2816, NumHiddenLayers = 8, NumAttentionHeads = 16, NumKeyValueHeads = 4, MaxPositionEmbeddings = 2048, TieWordEmbeddings = false };
        var dir = Path.Combine(Path.GetTempPath(), $"peft-bench-devmap-{Environment.ProcessId}");
        try
        {
            LoadBenchmark.WriteRandomCheckpoint(config, dir);
            using var ids = torch.randint(0, 32000, [2, 32], dtype: torch.ScalarType.Int64);
            var nf4 = new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitUseDoubleQuant = true, Bnb4BitComputeDtype = torch.ScalarType.Float32 };
            using var whole = Logits(dir, new FromPretrainedOptions { Dtype = torch.ScalarType.Float32, DeviceMap = "cuda:0" }, ids, out long bytes, out _, out _);
            var half = new Dictionary<string, long> { ["cuda:0"] = bytes / 2, ["cpu"] = 64L << 30 };
            Case("sequential_cuda0_half_cpu_spill", new FromPretrainedOptions { Dtype = torch.ScalarType.Float32, DeviceMap = "sequential", MaxMemory = half }, whole);
            Case("auto_free_memory", new FromPretrainedOptions { Dtype = torch.ScalarType.Float32, DeviceMap = "auto" }, whole);
            if (torch.cuda.device_count() > 1)
                Case("balanced_two_gpus", new FromPretrainedOptions { Dtype = torch.ScalarType.Float32, DeviceMap = "balanced" }, whole);
            using var nf4Whole = Logits(dir, new FromPretrainedOptions { Dtype = torch.ScalarType.Float32, DeviceMap = "cuda:0", Quantization = nf4 }, ids, out long nf4Bytes, out _, out _);
            Case("nf4_sequential_cpu_spill", new FromPretrainedOptions
            {
                Dtype = torch.ScalarType.Float32, DeviceMap = "sequential", Quantization = nf4,
                MaxMemory = new Dictionary<string, long> { ["cuda:0"] = bytes / 2, ["cpu"] = 64L << 30 },  // planned in fp32 bytes
            }, nf4Whole);

            void Case(string name, FromPretrainedOptions o, torch.Tensor reference)
            {
                using var logits = Logits(dir, o, ids, out long total, out var perDevice, out var layers);
                using var a = reference.flatten();
                using var b = logits.flatten();
                report(new Dictionary<string, object?>
                {
                    ["case"] = name, ["model_bytes"] = total, ["bytes_per_device"] = perDevice, ["layers_per_device"] = layers,
                    ["max_abs_diff"] = (a - b).abs().max().item<float>(),
                    ["cosine"] = torch.nn.functional.cosine_similarity(a.unsqueeze(0), b.unsqueeze(0)).item<float>(),
                });
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    private static torch.Tensor Logits(string dir, FromPretrainedOptions options, torch.Tensor ids, out long bytes,
        out IReadOnlyDictionary<string, long> perDevice, out Dictionary<string, int> layers)
    {
        using var model = AutoModelForCausalLM.FromPretrained(dir, options);
        bytes = model.GetMemoryFootprint();
        perDevice = DevicePlacement.MemoryFootprintByDevice(model);
        layers = model.named_modules()
            .Where(m => m.module is Peft.Transformers.Models.ITransformerLayer)
            .GroupBy(m => m.module.parameters().First().device.ToString())
            .ToDictionary(g => g.Key, g => g.Count());
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var logits = model.forward(new ModelInput { InputIds = ids.to(model.Device) }).Logits!.to(torch.CPU);
        return logits.MoveToOuterDisposeScope();
    }
}
