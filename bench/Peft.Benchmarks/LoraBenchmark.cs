using Peft.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Benchmarks;

/// <summary>
/// LoRA overhead on a stack of linear layers: base forward, LoRA forward (unmerged), merged forward, a mixed-adapter
/// batch, and a LoRA training step (forward + backward), each as a median over repeats.
/// </summary>
public sealed class LoraBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "lora";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        var device = options.Device == "cuda" ? CUDA : CPU;
        int dim = options.Quick ? 256 : 1024, layers = options.Quick ? 2 : 8, batch = options.Quick ? 4 : 16, tokens = options.Quick ? 32 : 128, r = 16;
        var stack = nn.Sequential(Enumerable.Range(0, layers).Select(i => ($"l{i}", (nn.Module<Tensor, Tensor>)nn.Linear(dim, dim))).ToArray());
        stack.to(device);
        using var x = randn([batch, tokens, dim], device: device);
        double Time(Action a) => Timing.MedianSeconds(() =>
        {
            using var scope = NewDisposeScope();
            a();
            if (device.type == DeviceType.CUDA) cuda.synchronize();
        }, options.Repeats);

        double baseS;
        using (no_grad()) baseS = Time(() => stack.forward(x));
        var pm = PeftModel.GetPeftModel(stack, new LoraConfig { R = r, LoraAlpha = 2 * r, TargetModules = @"l\d+", InitLoraWeights = false });
        pm.AddAdapter("b", new LoraConfig { R = r, LoraAlpha = 2 * r, TargetModules = @"l\d+", InitLoraWeights = false });
        pm.eval();
        double loraS, mixedS, mergedS;
        var rows = Enumerable.Range(0, batch).Select(i => i % 3 == 0 ? "__base__" : i % 3 == 1 ? "default" : "b").ToList();
        using (no_grad())
        {
            loraS = Time(() => pm.ForwardTensor(x));
            mixedS = Time(() => pm.ForwardTensor(x, rows));
            pm.MergeAdapter();
            mergedS = Time(() => pm.ForwardTensor(x));
            pm.UnmergeAdapter();
        }
        pm.train();
        double trainS = Time(() =>
        {
            var loss = pm.ForwardTensor(x).pow(2).mean();
            loss.backward();
            pm.zero_grad();
        });
        report(new Dictionary<string, object?>
        {
            ["benchmark"] = Name, ["device"] = options.Device, ["dim"] = dim, ["layers"] = layers, ["batch"] = batch, ["tokens"] = tokens, ["r"] = r,
            ["base_forward_s"] = baseS, ["lora_forward_s"] = loraS, ["merged_forward_s"] = mergedS, ["mixed_batch_forward_s"] = mixedS,
            ["lora_train_step_s"] = trainS, ["lora_overhead"] = loraS / baseS,
        });
    }
}
