using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// Probe (not a mirror): the GEMVs of one OPT-125m fp32 decoding step at batch 1 — the tied LM head
/// [1, 768]·[50272, 768]ᵀ and the 72 layer projections (48 × 768², 12 × 768→3072, 12 × 3072→768) — timed alone, with
/// the weight bytes each read, against a plain read of as many bytes (<c>sum</c>): how close the decode step's
/// weight traffic runs to this host's memory bandwidth.
/// </summary>
public sealed class GemvProbeBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "gemv_probe";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        const int h = 768, ff = 3072, vocab = 50272;
        using var scope = NewDisposeScope();
        var x = randn(1, h);
        var xf = randn(1, ff);
        var head = randn(vocab, h);
        var layers = Enumerable.Range(0, 48).Select(_ => randn(h, h))
            .Concat(Enumerable.Range(0, 12).Select(_ => randn(ff, h)))
            .Concat(Enumerable.Range(0, 12).Select(_ => randn(h, ff))).ToList();
        var flat = randn(31_250_000);   // 125 MB of float32, read by sum
        var row = new Dictionary<string, object?> { ["case"] = Name };
        double T(string name, Action a)
        {
            var ts = MirrorSetup.Time(() => { using var s = NewDisposeScope(); a(); }, options.Warmup, options.Repeats * 4, options);
            double ms = MirrorSetup.Median(ts) * 1e3;
            row[name + "_ms"] = Math.Round(ms, 3);
            return ms;
        }
        double headMs = T("lm_head", () => nn.functional.linear(x, head));
        double layerMs = T("layers", () => { foreach (var w in layers) nn.functional.linear(w.shape[1] == h ? x : xf, w); });
        double sumMs = T("sum", () => flat.sum());
        var x1 = x.view(-1);
        var headT = head.t().contiguous();                                                   // [768, 50272]
        T("lm_head_mv", () => mv(head, x1));
        T("lm_head_mm_contigT", () => mm(x, headT));
        T("lm_head_halves", () => { foreach (var part in head.chunk(2)) nn.functional.linear(x, part); });
        var headTView = headT.t();                                                           // [50272, 768], strides (1, 50272)
        T("lm_head_linear_tview", () => nn.functional.linear(x, headTView));
        var layersT = layers.Select(w => w.t().contiguous().t()).ToList();                   // same shapes, transposed storage
        T("layers_tview", () => { foreach (var w in layersT) nn.functional.linear(w.shape[1] == h ? x : xf, w); });
        var x16 = randn(16, h);
        T("lm_head_prefill16", () => nn.functional.linear(x16, head));
        T("lm_head_prefill16_tview", () => nn.functional.linear(x16, headTView));
        var x1024 = randn(1024, h);
        T("layers_train1024", () => { foreach (var w in layers.Take(48)) nn.functional.linear(x1024, w); });
        T("layers_train1024_tview", () => { foreach (var w in layersT.Take(48)) nn.functional.linear(x1024, w); });
        var xf1024 = randn(1024, ff);
        var g768 = randn(1024, h);
        var g3072 = randn(1024, ff);
        // one training step's layer GEMMs at 8 x 128 tokens: forward x·Wᵀ and the input gradient g·W, every projection
        void Train(List<Tensor> ws)
        {
            foreach (var w in ws)
            {
                nn.functional.linear(w.shape[1] == h ? x1024 : xf1024, w);
                mm(w.shape[0] == h ? g768 : g3072, w);
            }
        }
        T("train_fwd_bwd", () => Train(layers));
        T("train_fwd_bwd_tview", () => Train(layersT));
        T("lm_head_mm_W_xT", () => mm(head, x.t()));                                        // [V, 1]
        T("lm_head_mul_sum", () => head.mul(x).sum(1));
        var xb2 = x.view(1, h, 1).expand(2, h, 1);
        T("lm_head_bmm2", () => bmm(head.view(2, vocab / 2, h), xb2));
        var xb4 = x.view(1, h, 1).expand(4, h, 1);
        T("lm_head_bmm4", () => bmm(head.view(4, vocab / 4, h), xb4));
        T("lm_head_matmul_x1", () => matmul(head, x1));
        int threads = get_num_threads();
        set_num_threads(1);
        T("lm_head_1thread", () => nn.functional.linear(x, head));
        T("lm_head_mv_1thread", () => mv(head, x1));
        set_num_threads(threads);
        double layerBytes = layers.Sum(w => (double)w.numel()) * 4;
        row["lm_head_gb_s"] = Math.Round(head.numel() * 4 / headMs / 1e6, 1);
        row["layers_gb_s"] = Math.Round(layerBytes / layerMs / 1e6, 1);
        row["sum_gb_s"] = Math.Round(flat.numel() * 4 / sumMs / 1e6, 1);
        report(row);
    }
}
