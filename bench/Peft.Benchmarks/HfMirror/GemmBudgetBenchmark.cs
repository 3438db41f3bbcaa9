using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// <c>gemm_budget</c>: the BLAS work of one <c>lora_step</c> alone — the GEMMs of OPT-125m's forward (every linear as
/// <c>F.linear(x, W, b)</c> = addmm, the tied LM head as <c>F.linear(x, E)</c>) and of its backward with frozen base weights (grad input
/// only: <c>grad·W</c>), at the step's token count (batch × seq), fp32. Attention's batched products and LoRA's rank-8
/// products are left out (under 2 % of the step's multiply-adds). Mirrors <c>bench/py/gemm_budget.py</c> call for call,
/// so a same-run pair shows how much of each side's step time its BLAS needs: the ceiling a step ratio can reach when
/// everything around the GEMMs costs nothing.
/// </summary>
public sealed class GemmBudgetBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "gemm_budget";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        const int h = 768, ffn = 3072, vocab = 50272, layers = 12;
        long n = (long)MirrorSetup.Batch(options) * MirrorSetup.Seq(options);
        var dev = MirrorSetup.DeviceOf(options);
        using var x = randn([n, h], device: dev);
        using var xf = randn([n, ffn], device: dev);
        using var gv = randn([n, vocab], device: dev);
        using var wq = randn([h, h], device: dev);
        using var w1 = randn([ffn, h], device: dev);
        using var w2 = randn([h, ffn], device: dev);
        using var emb = randn([vocab, h], device: dev);
        using var bh = randn([h], device: dev);
        using var bf = randn([ffn], device: dev);
        // [n, h]·[h, h]ᵀ ×4, [n, h]·[ffn, h]ᵀ, [n, ffn]·[h, ffn]ᵀ per layer; [n, h]·[vocab, h]ᵀ once
        void Forward()
        {
            using var scope = NewDisposeScope();
            for (int l = 0; l < layers; l++)
            {
                for (int i = 0; i < 4; i++) nn.functional.linear(x, wq, bh);
                nn.functional.linear(x, w1, bf);
                nn.functional.linear(xf, w2, bh);
            }
            nn.functional.linear(x, emb);
        }
        // grad input of the same linears: [n, out]·[out, in]
        void Backward()
        {
            using var scope = NewDisposeScope();
            for (int l = 0; l < layers; l++)
            {
                for (int i = 0; i < 4; i++) mm(x, wq);
                mm(x, w2);       // fc2: grad [n, h] · W2 [h, ffn] → [n, ffn]
                mm(xf, w1);      // fc1: grad [n, ffn] · W1 [ffn, h] → [n, h]
            }
            mm(gv, emb);
        }
        var tf = MirrorSetup.Time(Forward, options.Warmup, options.Repeats, options);
        var tb = MirrorSetup.Time(Backward, options.Warmup, options.Repeats, options);
        double macs = layers * (4.0 * h * h + 2.0 * h * ffn) * n + (double)h * vocab * n;
        var both = tf.Zip(tb, (a, b) => a + b).ToArray();
        var row = MirrorSetup.Common(Name, options, both);
        row["tokens"] = n;
        row["tok_per_s"] = Math.Round(n / MirrorSetup.Median(both), 1);
        row["forward_gemm_s"] = Math.Round(MirrorSetup.Median(tf), 6);
        row["backward_gemm_s"] = Math.Round(MirrorSetup.Median(tb), 6);
        row["gflops"] = Math.Round(2 * macs / MirrorSetup.Median(tf) / 1e9, 1);
        row["peak_rss_mb"] = MirrorSetup.PeakRssMb();
        report(row);
    }
}
