using TorchSharp;
using Peft.Core;
using Peft.Transformers;
using static TorchSharp.torch;

namespace Peft.Benchmarks.Distributed;

/// <summary>
/// Layer placement check (one process, two GPUs visible): the random-init <c>--model</c> (Llama-1B shape) on cuda:0,
/// logits and a LoRA forward/backward; then the second half of the decoder layers, the final norm and lm_head moved to
/// cuda:1 (<see cref="DevicePlacement"/>), the same again. Reports the largest logit, loss and LoRA-gradient
/// differences and the bytes per device (<see cref="DevicePlacement.MemoryFootprintByDevice"/>).
/// </summary>
public sealed class SplitModelBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "split_logits";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        bool cuda2 = options.Device == "cuda" && cuda.device_count() >= 2;
        string d0 = cuda2 ? "cuda:0" : "cpu", d1 = cuda2 ? "cuda:1" : "cpu";
        var o = options with { Device = "cpu" };
        var model = HfMirror.MirrorSetup.BuildModel(o);
        model.to(new Device(d0));
        using var pm = PeftModel.GetPeftModel(model, HfMirror.MirrorSetup.Lora());
        using (no_grad())
            foreach (var (name, p) in pm.named_parameters().Where(kv => kv.name.Contains("lora_B"))) p.normal_(0, 0.02); // non-zero adapters
        int b = Math.Min(HfMirror.MirrorSetup.Batch(options), 2), t = Math.Min(HfMirror.MirrorSetup.Seq(options), 256);
        var g = new Generator((ulong)options.Seed + 1);
        using var ids = randint(3, HfMirror.MirrorSetup.Vocab(options), [b, t], generator: g, dtype: ScalarType.Int64);
        var (logits0, loss0, grads0) = Pass(pm, ids, d0);
        int layers = HfMirror.MirrorSetup.Config(options) is LlamaConfig lc ? lc.NumHiddenLayers
            : throw new ArgumentException($"split_logits places Llama layers (model.layers.N); --model {options.Model} is not Llama-shaped");
        var map = new Dictionary<string, string> { ["lm_head"] = d1, ["model.norm"] = d1 };
        for (int i = layers / 2; i < layers; i++) map[$"model.layers.{i}"] = d1;
        DevicePlacement.Apply(model, map);
        var footprint = DevicePlacement.MemoryFootprintByDevice(pm);
        var (logits1, loss1, grads1) = Pass(pm, ids, d0);
        double logitDiff = MaxDiff(logits0, logits1);
        double gradDiff = grads0.Keys.Max(k => MaxDiff(grads0[k], grads1[k]));
        report(new Dictionary<string, object?>
        {
            ["case"] = "split_logits", ["model"] = options.Model, ["dtype"] = options.Dtype, ["devices"] = $"{d0}+{d1}", ["batch"] = b, ["seq"] = t,
            ["max_abs_logit_diff"] = logitDiff, ["loss_one_device"] = loss0, ["loss_split"] = loss1, ["max_abs_lora_grad_diff"] = gradDiff,
            ["lora_grads_compared"] = grads0.Count, ["bytes_per_device"] = footprint,
            ["logits_equal"] = logitDiff == 0, ["logits_within_1e-4"] = logitDiff <= 1e-4,
        });
        logits0.Dispose(); logits1.Dispose();
        foreach (var x in grads0.Values.Concat(grads1.Values)) x.Dispose();
    }

    // Logits (CPU float32), loss and LoRA gradients (CPU float32) of one forward + backward with labels = ids.
    private static (Tensor Logits, double Loss, Dictionary<string, Tensor> Grads) Pass(PeftModel pm, Tensor ids, string inputDevice)
    {
        pm.zero_grad();
        using var scope = NewDisposeScope();
        var input = ids.to(new Device(inputDevice));
        var output = pm.forward(new ModelInput { InputIds = input, Labels = input });
        output.Loss!.backward();
        var grads = pm.named_parameters().Where(kv => kv.parameter.requires_grad && kv.parameter.grad is not null)
            .ToDictionary(kv => kv.name, kv => kv.parameter.grad!.to(ScalarType.Float32).cpu().MoveToOuterDisposeScope());
        return (output.Logits!.to(ScalarType.Float32).cpu().MoveToOuterDisposeScope(), output.Loss.to(ScalarType.Float64).cpu().item<double>(), grads);
    }

    private static double MaxDiff(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return (a - b).abs().max().item<float>();
    }
}
