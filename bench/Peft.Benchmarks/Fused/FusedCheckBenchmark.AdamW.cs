using Peft.Transformers;
using Peft.Transformers.Optimization;
using TorchSharp;
using Parameter = TorchSharp.Modules.Parameter;
using ParamGroup = Peft.Transformers.Optimization.ParamGroup;
using AdamW = Peft.Transformers.Optimization.AdamW;
using static TorchSharp.torch;

namespace Peft.Benchmarks.Fused;

// fused_check's AdamW part: the fused kernel (FusedKernels.AdamWStep) against the eager op chain it replaces, through
// the real optimizer (its multi-tensor form over two parameters, then the graph form run without capture, whose
// device-memory scalars must give the eager chain's values too), several steps with a warm-up lr of 0 first. Where the
// kernel does not apply (float32), both runs are eager and the graph form's capturable formula is reported, not asserted.
public sealed partial class FusedCheckBenchmark
{
    private static Dictionary<string, object?> CheckAdamW(long n, ScalarType dtype, double weightDecay, Device device, List<string> failures)
    {
        using var scope = NewDisposeScope();
        manual_seed(n + 11);
        var p0 = randn(n) * 0.5;
        var grads = Enumerable.Range(0, 4).Select(k => randn(n) * (k + 1) * 0.01).ToArray();
        double[] lrs = [0, 1e-3, 7e-4, 3e-4];
        // two parameters (the second a quarter of the first), one group: the multi-tensor form's flat buffers
        (Tensor P, Tensor M, Tensor V) Run(bool fused, bool graphForm)
        {
            using var inner = NewDisposeScope();
            long split = n / 4;
            var a = new Parameter(p0.narrow(0, 0, n - split).to(dtype).to(device).clone());
            var b = new Parameter(p0.narrow(0, n - split, split).to(dtype).to(device).clone());
            var group = new ParamGroup(["a", "b"], [a, b], WeightDecay: weightDecay) { Lr = 0 };
            using var opt = new AdamW([group], @foreach: true);
            WithFused(fused, () =>
            {
                for (int k = 0; k < lrs.Length; k++)
                {
                    using var step = NewDisposeScope();
                    var g = grads[k].to(dtype).to(device);
                    ((a * g.narrow(0, 0, n - split)).sum() + (b * g.narrow(0, n - split, split)).sum()).backward();   // grads = g exactly
                    opt.SetLr(lrs[k]);
                    if (graphForm)
                    {
                        opt.PrepareGraphStep();
                        opt.StepGraph();
                        opt.FinishGraphStep();
                    }
                    else opt.Step();
                    opt.ZeroGrad();
                }
                return 0;
            });
            Tensor Flat(string key) => cat([opt.StateTensor(0, key)!.reshape(-1), opt.StateTensor(1, key)!.reshape(-1)]).cpu();
            return (cat([a.detach().reshape(-1), b.detach().reshape(-1)]).cpu().MoveToOuterDisposeScope(),
                Flat("exp_avg").MoveToOuterDisposeScope(), Flat("exp_avg_sq").MoveToOuterDisposeScope());
        }
        var eager = Run(fused: false, graphForm: false);
        var fusedEager = Run(fused: true, graphForm: false);
        var fusedGraph = Run(fused: true, graphForm: true);
        bool applies;
        using (var probe = zeros(n, dtype, device))
        using (var opt = new AdamW([new ParamGroup(["probe"], [new Parameter(probe.clone())], WeightDecay: 0)]))
            applies = opt.UsesFusedKernel(probe, probe, probe, probe);
        var row = new Dictionary<string, object?>
        {
            ["case"] = "fused_check", ["part"] = "adamw", ["n"] = n, ["dtype"] = dtype.ToString(), ["weight_decay"] = weightDecay,
            ["fused_applies"] = applies,       // float32 keeps the eager chain (AdamW.UsesFusedKernel): then both runs are eager
        };
        Compare(row, "param", fusedEager.P, eager.P, dtype);
        Compare(row, "exp_avg", fusedEager.M, eager.M, dtype);
        Compare(row, "exp_avg_sq", fusedEager.V, eager.V, dtype);
        Compare(row, "graph_form_param", fusedGraph.P, eager.P, dtype);
        Compare(row, "graph_form_exp_avg_sq", fusedGraph.V, eager.V, dtype);
        // without the fused kernel (float32) the graph form runs torch's capturable formula: equal up to rounding only
        foreach (var k in applies ? new[] { "param", "exp_avg", "exp_avg_sq", "graph_form_param", "graph_form_exp_avg_sq" } : ["param", "exp_avg", "exp_avg_sq"])
            if ((long)row[k + "_differing"]! != 0) failures.Add($"adamw {dtype} n={n} wd={weightDecay}: {k} {row[k + "_differing"]} elements differ");
        return row;
    }

    // One multi-tensor AdamW step over n elements of bf16, fused vs the eager chain (median ms of 20).
    private static Dictionary<string, object?> TimeAdamW(Device device, long n)
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(randn(n, ScalarType.BFloat16, device) * 0.1);
        var group = new ParamGroup(["p"], [p], WeightDecay: 0.01) { Lr = 1e-4 };
        using var opt = new AdamW([group], @foreach: true);
        var g = randn(n, ScalarType.BFloat16, device) * 0.01;
        (p * g).sum().backward();
        void Step() => opt.Step();          // the gradient stays; each call is one more step
        return new Dictionary<string, object?>
        {
            ["case"] = "fused_check", ["part"] = "adamw_time", ["n"] = n, ["dtype"] = "BFloat16",
            ["fused_ms"] = Ms(device, true, Step), ["eager_ms"] = Ms(device, false, Step),
        };
    }
}
