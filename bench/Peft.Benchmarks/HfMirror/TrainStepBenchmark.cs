using System.Diagnostics;
using Peft.Core;
using Peft.Core.Torch;
using Peft.Transformers;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// hf_lora_bench.py / hf_gpu_bench.py <c>lora_step</c> and <c>full_step</c>: forward with labels (the model's own
/// shifted cross-entropy), backward, AdamW step, zero_grad(set_to_none), loss read back; the model in train mode
/// (OPT's dropout 0.1 on CPU). Also reports the median of each phase (forward+loss / backward / optimizer): on the CPU
/// from the timed steps; on CUDA from as many extra steps synced after each phase, while the timed steps sync once per
/// step as hf_gpu_bench.py's loop does.
/// <c>PEFT_RSS_TRACE=1</c> writes VmRSS / VmHWM and glibc's heap statistics after each phase of each step to stderr.
/// </summary>
public abstract class TrainStepBenchmark : IBenchmark
{
    /// <summary>True for the LoRA case, false for full fine-tuning.</summary>
    protected abstract bool UseLora { get; }

    /// <inheritdoc />
    public abstract string Name { get; }

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        var model = MirrorSetup.BuildModel(options);
        MirrorSetup.TraceRss("model built");
        PeftModel? pm = UseLora ? PeftModel.GetPeftModel(model, MirrorSetup.Lora()) : null;
        nn.Module<ModelInput, ModelOutput> net = pm is null ? model : pm;
        net.train();
        var named = ((nn.Module)net).named_parameters().Where(p => p.parameter.requires_grad).ToList();
        using var opt = MirrorSetup.Optimizer(net);
        using var ids = MirrorSetup.RandomBatch(options);
        var losses = new List<double>();
        var (fwd, bwd, optT) = (new List<double>(), new List<double>(), new List<double>());
        var (rss, faults) = (new List<double>(), new List<double>());
        bool trim = Environment.GetEnvironmentVariable("PEFT_BENCH_MALLOC_TRIM") == "1";   // experiment: glibc malloc_trim(0) after each step
        int gc0 = GC.CollectionCount(0), gc2 = GC.CollectionCount(2);
        // On CUDA the timed steps run as hf_gpu_bench.py's loop: forward, backward, step, zero_grad, one sync at the end
        // (a sync between phases would drain the launch queue twice per step and serialise host and device work the
        // Python side overlaps); the phase medians then come from as many extra steps with a sync after each phase.
        // On the CPU a sync is a no-op, so every step is timed and phased at once.
        bool cudaTimed = options.Device == "cuda";
        bool syncPhases = !cudaTimed;

        void Step()
        {
            long f0 = MirrorSetup.MinorFaults();
            using var scope = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            var output = net.forward(new ModelInput { InputIds = ids, Labels = ids })!;
            var loss = output.Loss!;
            output.Logits?.Dispose();   // as `m(...).loss` in Python: the output (its [B, T, V] logits) is dropped here; autograd keeps what backward needs
            if (syncPhases) MirrorSetup.Sync(options);
            double tf = sw.Elapsed.TotalSeconds;
            MirrorSetup.TraceRss($"step {losses.Count + 1} forward");
            MirrorSetup.TraceDeviceMemory(options, $"step {losses.Count + 1} forward");
            sw.Restart();
            loss.backward();
            if (syncPhases) MirrorSetup.Sync(options);
            double tb = sw.Elapsed.TotalSeconds;
            MirrorSetup.TraceRss($"step {losses.Count + 1} backward");
            MirrorSetup.TraceDeviceMemory(options, $"step {losses.Count + 1} backward");
            sw.Restart();
            opt.Step();
            MirrorSetup.TraceRss($"step {losses.Count + 1} optimizer step");
            MirrorSetup.TraceDeviceMemory(options, $"step {losses.Count + 1} optimizer step");
            opt.ZeroGrad();
            if (syncPhases)
            {
                MirrorSetup.Sync(options);
                fwd.Add(tf);
                bwd.Add(tb);
                optT.Add(sw.Elapsed.TotalSeconds);
            }
            losses.Add(loss.item<float>());
            MirrorSetup.TraceRss($"step {losses.Count} zero_grad");
            scope.Dispose();
            MirrorSetup.TraceDeviceMemory(options, $"step {losses.Count} end");
            if (trim) NativeHeap.Trim();
            MirrorSetup.TraceRss($"step {losses.Count} end");
            rss.Add(MirrorSetup.RssMb());
            faults.Add(MirrorSetup.MinorFaults() - f0);
        }

        // --cuda-graphs: the whole step (forward, backward, AdamW in torch's capturable form, zero_grad) is one graph
        // replay; its phases are not separable, so forward_s holds the step and backward_s / optimizer_s are 0.
        using var graph = options.CudaGraphs
            ? new CudaGraphTrainStep(net, opt, named.Select(p => (Tensor)p.parameter).ToList(), maxGradNorm: 0)
            : null;
        void GraphStep()
        {
            using var scope = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            var (loss, _) = graph!.Run(new ModelInput { InputIds = ids, Labels = ids });
            losses.Add(loss.item<float>());                          // the loss read back: the step's one sync
            fwd.Add(sw.Elapsed.TotalSeconds);
            bwd.Add(0);
            optT.Add(0);
            opt.ZeroGrad();
            rss.Add(MirrorSetup.RssMb());
            faults.Add(0);
        }

        var ts = MirrorSetup.Time(graph is null ? Step : GraphStep, options.Warmup, options.Repeats, options);
        int timedSteps = losses.Count;
        int skip = options.Warmup;
        if (graph is null && cudaTimed)
        {
            syncPhases = true;
            for (int i = 0; i < ts.Length; i++) Step();
            skip = 0;
        }
        double s = MirrorSetup.Median(ts);
        int tokens = MirrorSetup.Batch(options) * MirrorSetup.Seq(options);
        var row = MirrorSetup.Common(Name, options, ts);
        row["batch"] = MirrorSetup.Batch(options);
        row["seq"] = MirrorSetup.Seq(options);
        row["s_per_step"] = Math.Round(s, 6);
        row["tok_per_s"] = Math.Round(tokens / s, 1);
        row["forward_s"] = Math.Round(MirrorSetup.Median(fwd.Skip(skip)), 6);
        row["backward_s"] = Math.Round(MirrorSetup.Median(bwd.Skip(skip)), 6);
        row["optimizer_s"] = Math.Round(MirrorSetup.Median(optT.Skip(skip)), 6);
        row["rss_after_step_mb"] = rss.ToArray();
        row["step_minflt"] = MirrorSetup.Median(faults.Skip(skip));
        row["malloc_trim"] = trim;
        row["gc0_collections"] = GC.CollectionCount(0) - gc0;
        row["gc2_collections"] = GC.CollectionCount(2) - gc2;
        row["trainable_params"] = named.Sum(p => p.parameter.numel());
        row["loss_first"] = Math.Round(losses[0], 4);
        row["loss_last"] = Math.Round(losses[timedSteps - 1], 4);     // after warm-up + timed steps (the phase steps come later)
        row["phases"] = graph is not null ? "one graph replay (not separable)" : cudaTimed ? "from as many extra steps, synced after each phase" : "the timed steps";
        row["optimizer"] = "Peft.Transformers.AdamW(lr=2e-4, wd=0.01) = torch.optim.AdamW defaults" + (graph is null ? "" : ", capturable form");
        row["cuda_graphs"] = graph is not null;
        if (graph is not null)
        {
            row["graph_replays"] = graph.Replays;
            row["graph_eager_steps"] = graph.EagerSteps;
        }
        row["peak_rss_mb"] = MirrorSetup.PeakRssMb();
        report(row);
        pm?.Dispose();
        model.Dispose();
    }
}

/// <summary><c>lora_step</c>: LoRA r=8 on q_proj/v_proj, AdamW over the adapter weights only.</summary>
public sealed class LoraStepBenchmark : TrainStepBenchmark
{
    /// <inheritdoc />
    protected override bool UseLora => true;

    /// <inheritdoc />
    public override string Name => "lora_step";
}

/// <summary><c>full_step</c>: every parameter trained with AdamW.</summary>
public sealed class FullStepBenchmark : TrainStepBenchmark
{
    /// <inheritdoc />
    protected override bool UseLora => false;

    /// <inheritdoc />
    public override string Name => "full_step";
}
