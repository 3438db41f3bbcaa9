using Peft.Benchmarks.HfMirror;
using Peft.Transformers.Models;
using static TorchSharp.torch;

namespace Peft.Benchmarks;

/// <summary>
/// <c>causal_lm_loss</c>: the causal-LM loss alone on the mirror cases' logits shape ([8, 128, 50272] on CPU;
/// <c>--batch/--seq/--model/--dtype/--device</c> as they), forward and backward, two implementations alternating
/// in one process (each iteration runs both, in turns first): torch's composite as HF writes it
/// (<c>cross_entropy(logits.float().view(-1, V), shifted, ignore_index=-100)</c>) and the library's
/// <c>ModelOps.CausalLmLoss</c> (<c>CrossEntropyFunction</c>). Reports the medians of each phase, minor page faults
/// per iteration, and the largest loss / gradient difference between the two.
/// </summary>
public sealed class CausalLmLossBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "causal_lm_loss";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        var device = MirrorSetup.DeviceOf(options);
        int b = MirrorSetup.Batch(options), t = MirrorSetup.Seq(options), v = MirrorSetup.Vocab(options);
        var gen = new Generator((ulong)options.Seed + 5);
        using var logits = (randn(b, t, v, generator: gen) * 2).to(MirrorSetup.DtypeOf(options)).to(device).requires_grad_(true); // [B, T, V]
        using var labels = randint(0, v, [b, t], generator: gen).to(device);                   // [B, T]
        var impls = new (string Name, Func<Tensor> Loss)[]
        {
            ("composite", () =>
            {
                var shifted = nn.functional.pad(labels, [0, 1], value: -100).narrow(1, 1, t);  // [B, T]
                return nn.functional.cross_entropy(logits.to_type(ScalarType.Float32).reshape(-1, v), shifted.reshape(-1), ignore_index: -100);
            }),
            ("fused", () => ModelOps.CausalLmLoss(logits, labels)),
        };
        var fwd = impls.Select(_ => new List<double>()).ToArray();
        var bwd = impls.Select(_ => new List<double>()).ToArray();
        var faults = impls.Select(_ => new List<double>()).ToArray();
        var losses = new double[impls.Length];
        var grads = new Tensor?[impls.Length];
        for (int it = 0; it < options.Warmup + options.Repeats; it++)
        {
            for (int k = 0; k < impls.Length; k++)
            {
                int i = (it + k) % impls.Length;                                                 // alternate who runs first
                using var scope = NewDisposeScope();
                logits.grad?.Dispose();
                logits.grad = null;
                long f0 = MirrorSetup.MinorFaults();
                var sw = System.Diagnostics.Stopwatch.StartNew();
                var loss = impls[i].Loss();
                MirrorSetup.Sync(options);
                double tf = sw.Elapsed.TotalSeconds;
                loss.backward();
                MirrorSetup.Sync(options);
                double tb = sw.Elapsed.TotalSeconds - tf;
                long df = MirrorSetup.MinorFaults() - f0;
                if (it < options.Warmup) continue;
                fwd[i].Add(tf); bwd[i].Add(tb); faults[i].Add(df);
                losses[i] = loss.item<float>();
                grads[i]?.Dispose();
                grads[i] = logits.grad!.detach().clone().DetachFromDisposeScope();
            }
        }
        var row = MirrorSetup.Common(Name, options, fwd[1].Zip(bwd[1], (a, c) => a + c).ToArray());
        row["batch"] = b; row["seq"] = t; row["vocab"] = v;
        for (int i = 0; i < impls.Length; i++)
        {
            row[$"{impls[i].Name}_forward_s"] = Math.Round(MirrorSetup.Median(fwd[i]), 6);
            row[$"{impls[i].Name}_backward_s"] = Math.Round(MirrorSetup.Median(bwd[i]), 6);
            row[$"{impls[i].Name}_minor_faults"] = MirrorSetup.Median(faults[i]);
        }
        row["speedup"] = Math.Round((MirrorSetup.Median(fwd[0]) + MirrorSetup.Median(bwd[0])) / (MirrorSetup.Median(fwd[1]) + MirrorSetup.Median(bwd[1])), 3);
        row["max_abs_loss_diff"] = Math.Abs(losses[0] - losses[1]);
        using (var d = (grads[0]! - grads[1]!).abs().max()) row["max_abs_grad_diff"] = d.to_type(ScalarType.Float32).item<float>();
        row["peak_rss_mb"] = MirrorSetup.PeakRssMb();
        report(row);
        foreach (var g in grads) g?.Dispose();
    }
}
