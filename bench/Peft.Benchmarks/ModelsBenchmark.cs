using Peft.Core;
using Peft.Transformers;
using TorchSharp;

namespace Peft.Benchmarks;

/// <summary>
/// Forward-pass speed of the model architectures (random weights from FromConfig): prefill of a batch, one cached
/// decoding step, and a training step (forward + backward of the causal LM loss). Reports medians and tokens/s.
/// </summary>
public sealed class ModelsBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "models";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        var device = options.Device == "cuda" ? torch.CUDA : torch.CPU;
        int hidden = options.Quick ? 256 : 1024, layers = options.Quick ? 2 : 8, batch = 4, seq = options.Quick ? 64 : 256;
        var configs = new (string Name, PretrainedConfig Config)[]
        {
            ("llama-gqa", new LlamaConfig { VocabSize = 32000, HiddenSize = hidden, IntermediateSize = hidden * 8 / 3, NumHiddenLayers = layers,
                NumAttentionHeads = hidden / 64, NumKeyValueHeads = hidden / 256, MaxPositionEmbeddings = 4096 }),
            ("gpt2", new GPT2Config { VocabSize = 32000, NEmbd = hidden, NHead = hidden / 64, NLayer = layers, NPositions = 4096 }),
            ("opt", new OPTConfig { VocabSize = 32000, HiddenSize = hidden, NumAttentionHeads = hidden / 64, FfnDim = hidden * 4, NumHiddenLayers = layers, MaxPositionEmbeddings = 4096 }),
        };
        foreach (var (name, config) in configs)
        {
            using var model = AutoModelForCausalLM.FromConfig(config);
            model.to(device);
            torch.random.manual_seed(0);
            using var ids = torch.randint(0, 32000, [batch, seq], dtype: torch.ScalarType.Int64, device: device);
            using var mask = torch.ones([batch, seq], dtype: torch.ScalarType.Int64, device: device);
            void Sync() { if (device.type == DeviceType.CUDA) torch.cuda.synchronize(); }

            model.eval();
            double prefill;
            using (torch.no_grad())
            {
                prefill = Timing.MedianSeconds(() =>
                {
                    using var scope = torch.NewDisposeScope();
                    model.forward(new ModelInput { InputIds = ids, AttentionMask = mask });
                    Sync();
                }, options.Repeats);
            }
            report(new Dictionary<string, object?>
            {
                ["benchmark"] = Name, ["case"] = $"{name}-prefill", ["device"] = options.Device, ["params"] = model.NumParameters(),
                ["batch"] = batch, ["seq"] = seq, ["median_s"] = prefill, ["tokens_per_s"] = batch * seq / prefill,
            });

            double decode;
            using (torch.no_grad())
            {
                using var cache = new KeyValueCache();
                using (torch.NewDisposeScope()) model.forward(new ModelInput { InputIds = ids, AttentionMask = mask, PastKeyValues = cache });
                using var step = ids.narrow(1, 0, 1).contiguous();
                using var stepMask = torch.ones([batch, seq + 1], dtype: torch.ScalarType.Int64, device: device);
                decode = Timing.MedianSeconds(() =>
                {
                    using var scope = torch.NewDisposeScope();
                    model.forward(new ModelInput { InputIds = step, AttentionMask = stepMask, PastKeyValues = cache });
                    cache.Crop(seq);
                    Sync();
                }, options.Repeats * 4);
            }
            report(new Dictionary<string, object?>
            {
                ["benchmark"] = Name, ["case"] = $"{name}-decode-step", ["device"] = options.Device, ["batch"] = batch, ["past"] = seq,
                ["median_s"] = decode, ["tokens_per_s"] = batch / decode,
            });

            model.train();
            double trainStep = Timing.MedianSeconds(() =>
            {
                using var scope = torch.NewDisposeScope();
                var o = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask, Labels = ids });
                o.Loss!.backward();
                model.zero_grad();
                Sync();
            }, options.Repeats);
            report(new Dictionary<string, object?>
            {
                ["benchmark"] = Name, ["case"] = $"{name}-train-step", ["device"] = options.Device, ["batch"] = batch, ["seq"] = seq,
                ["median_s"] = trainStep, ["tokens_per_s"] = batch * seq / trainStep,
            });
        }
    }
}
