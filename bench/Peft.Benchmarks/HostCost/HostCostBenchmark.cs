using System.Diagnostics;
using Peft.Benchmarks.HfMirror;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HostCost;

/// <summary>
/// <c>host_cost</c>: the host's cost per call of single ops and of one LoRA layer, on tensors so small that the kernels
/// cost next to nothing: each case runs <c>--repeats</c> × 200 calls back to back and syncs once at the end, so the time
/// per call is what the stack spends on the host (dispatch, autograd bookkeeping, kernel launch, the wrappers).
/// Mirrors <c>bench/py/host_cost.py</c> case by case (same shapes, same ops), which gives the same-run ratio against
/// the Python stack: where the eager GPU step is host-bound (OPT-125m), this is the budget per op.
/// Cases: <c>add</c> (no autograd), <c>add_grad</c> (inputs that require grad, forward only), <c>linear_fwd_bwd</c>
/// (bf16 linear, forward + backward), <c>lora_fwd_bwd</c> (the same linear with a float32 LoRA r=8 adapter, PEFT's
/// autocast form, forward + backward), <c>base_fwd_bwd</c> (the LoRA layer's frozen base alone, input requiring grad),
/// <c>base_fwd</c> / <c>lora_fwd</c> (the forward alone, autograd recording).
/// <c>dotnet Peft.Benchmarks.dll host_cost [--device cuda] [--repeats 20]</c>
/// </summary>
public sealed class HostCostBenchmark : IBenchmark
{
    private const int CallsPerRepeat = 200;
    private const int Width = 64;

    /// <inheritdoc />
    public string Name => "host_cost";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        var device = MirrorSetup.DeviceOf(options);
        var bf16 = ScalarType.BFloat16;
        manual_seed(0);
        using var a = randn([4, Width], dtype: bf16, device: device);
        using var b = randn([4, Width], dtype: bf16, device: device);
        using var ag = randn([4, Width], dtype: bf16, device: device).requires_grad_(true);
        using var bg = randn([4, Width], dtype: bf16, device: device).requires_grad_(true);
        using var x = randn([2, 8, Width], dtype: bf16, device: device).requires_grad_(true);
        using var lin = nn.Linear(Width, Width, dtype: bf16, device: device);
        using var loraNet = nn.Sequential(("q_proj", nn.Linear(Width, Width, dtype: bf16, device: device)));
        using var pm = PeftModel.GetPeftModel(loraNet, new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = ["q_proj"] });
        var layer = (LoraLinear)pm.Tuner.TunerLayers().Single().Layer;
        var cases = new (string Name, Action Call)[]
        {
            ("add", () => a.add(b).Dispose()),
            ("add_grad", () => ag.add(bg).Dispose()),
            ("linear_fwd_bwd", () => { using var s = NewDisposeScope(); lin.forward(x).sum().backward(); }),
            ("base_fwd_bwd", () => { using var s = NewDisposeScope(); layer.BaseLayer.forward(x).sum().backward(); }),
            ("lora_fwd_bwd", () => { using var s = NewDisposeScope(); layer.forward(x).sum().backward(); }),
            ("base_fwd", () => { using var s = NewDisposeScope(); layer.BaseLayer.forward(x); }),
            ("lora_fwd", () => { using var s = NewDisposeScope(); layer.forward(x); }),
        };
        var row = new Dictionary<string, object?> { ["case"] = Name, ["calls_per_repeat"] = CallsPerRepeat, ["width"] = Width };
        foreach (var (name, call) in cases)
        {
            for (int i = 0; i < 50; i++) call();
            MirrorSetup.Sync(options);
            var us = new List<double>();
            for (int r = 0; r < Math.Max(3, options.Repeats); r++)
            {
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < CallsPerRepeat; i++) call();
                MirrorSetup.Sync(options);
                us.Add(sw.Elapsed.TotalMicroseconds / CallsPerRepeat);
            }
            row[name + "_us"] = Math.Round(MirrorSetup.Median(us), 2);
        }
        report(row);
    }
}
