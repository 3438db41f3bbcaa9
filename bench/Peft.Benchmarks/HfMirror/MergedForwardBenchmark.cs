using Peft.Core;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// hf_lora_bench.py <c>merged_forward</c>: the LoRA model (lora_B drawn from N(0, 0.02) so merging changes weights)
/// in eval mode, forward latency unmerged vs after <c>MergeAndUnload</c>, and the largest logit difference.
/// <c>PEFT_RSS_TRACE=1</c> writes VmRSS / VmHWM and glibc's heap statistics (mallinfo2) after each phase and each
/// forward to stderr (Python twin: bench/py/hf_merged_trace.py).
/// </summary>
public sealed class MergedForwardBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "merged_forward";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        static void Trace(string phase) => MirrorSetup.TraceRss(phase);
        var model = MirrorSetup.BuildModel(options);
        Trace("model built");
        var pm = PeftModel.GetPeftModel(model, MirrorSetup.Lora());
        using (no_grad())
            foreach (var (name, p) in pm.named_parameters())
                if (name.Contains("lora_B", StringComparison.Ordinal)) p.normal_(0.0, 0.02);
        pm.eval();
        Trace("lora model");
        using var ids = MirrorSetup.RandomBatch(options);
        Tensor Fwd(nn.Module<ModelInput, ModelOutput> m)
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            return m.forward(new ModelInput { InputIds = ids }).Logits!.MoveToOuterDisposeScope();
        }

        using var reference = Fwd(pm);
        Trace("reference logits");
        var tsU = MirrorSetup.Time(() => { Fwd(pm).Dispose(); Trace("unmerged forward"); }, options.Warmup, options.Repeats, options);
        Trace("unmerged timed");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var merged = (nn.Module<ModelInput, ModelOutput>)pm.MergeAndUnload();
        double mergeS = sw.Elapsed.TotalSeconds;
        Trace("merged");
        merged.eval();
        using var got = Fwd(merged);
        Trace("merged logits");
        var tsM = MirrorSetup.Time(() => { Fwd(merged).Dispose(); Trace("merged forward"); }, options.Warmup, options.Repeats, options);
        Trace("merged timed");
        double su = MirrorSetup.Median(tsU), sm = MirrorSetup.Median(tsM);
        var row = MirrorSetup.Common(Name, options, tsM);
        row["batch"] = MirrorSetup.Batch(options);
        row["seq"] = MirrorSetup.Seq(options);
        row["unmerged_s"] = Math.Round(su, 6);
        row["merged_s"] = Math.Round(sm, 6);
        row["s_per_step"] = Math.Round(sm, 6);
        row["tok_per_s"] = Math.Round(MirrorSetup.Batch(options) * MirrorSetup.Seq(options) / sm, 1);
        row["merged_speedup"] = Math.Round(su / sm, 3);
        row["merge_and_unload_s"] = Math.Round(mergeS, 4);
        using (var d = (reference - got).abs().max()) row["max_abs_logit_diff"] = d.item<float>();
        row["peak_rss_mb"] = MirrorSetup.PeakRssMb();
        report(row);
        merged.Dispose();
    }
}
