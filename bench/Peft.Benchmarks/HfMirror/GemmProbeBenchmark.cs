using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>Probe (not a mirror): the tied LM head's forward GEMM [n, h]·[vocab, h]ᵀ written four ways.</summary>
public sealed class GemmProbeBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "gemm_probe";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        const int h = 768, vocab = 50272;
        long n = (long)MirrorSetup.Batch(options) * MirrorSetup.Seq(options);
        using var x = randn([n, h]);
        using var emb = randn([vocab, h]);
        using var embT = emb.t().contiguous();
        using var outBuf = empty([n, vocab]);
        var row = new Dictionary<string, object?> { ["case"] = Name };
        void T(string name, Action a)
        {
            var ts = MirrorSetup.Time(() => { using var s = NewDisposeScope(); a(); }, options.Warmup, options.Repeats, options);
            row[name] = Math.Round(MirrorSetup.Median(ts), 4);
        }
        T("linear_fresh", () => nn.functional.linear(x, emb));
        T("mm_out_prealloc", () => outBuf.addmm_(x, emb.t(), beta: 0, alpha: 1));
        T("mm_fresh_contigT", () => mm(x, embT));
        T("mm_out_contigT", () => outBuf.addmm_(x, embT, beta: 0, alpha: 1));
        T("linear_chunk4_fresh", () => { foreach (var c in x.chunk(4)) nn.functional.linear(c, emb); });
        T("empty_touch", () => empty([n, vocab]).zero_());
        T("emb_mm_x_T", () => mm(emb, x.t()));   // [vocab, n]: the transposed product
        report(row);
    }
}
