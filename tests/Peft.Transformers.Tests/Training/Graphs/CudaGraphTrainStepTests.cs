using Peft.Core.Safetensors;
using Peft.Core.Torch;
using Peft.Testing;
using Peft.Transformers.Optimization;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Training.Graphs;

/// <summary>
/// <see cref="CudaGraphTrainStep"/> and <see cref="TrainingArguments.CudaGraphs"/> on the CPU: the arguments that
/// cannot be captured fail fast naming the field; the step body run eagerly (graphs off) keeps the optimizer's host
/// step counts, resumes bit-equal from a saved optimizer, and takes the mask path for any given attention mask (the
/// capture's kernels). The capture itself needs CUDA: bench <c>train_graph_check</c> (bench/README.md); the body's
/// arithmetic against the Python references: <see cref="TrajectoryFixtureTests"/> with graphForm = true.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public class CudaGraphTrainStepTests
{
    [Theory]
    [InlineData("GradientAccumulationSteps")]
    [InlineData("GradientCheckpointing")]
    [InlineData("Optim")]
    [InlineData("Device")]
    public void Arguments_that_cannot_be_captured_fail_validation_naming_the_field(string field)
    {
        var args = new TrainingArguments { OutputDir = "out", CudaGraphs = true };
        args = field switch
        {
            "GradientAccumulationSteps" => args with { GradientAccumulationSteps = 2 },
            "GradientCheckpointing" => args with { GradientCheckpointing = true },
            "Optim" => args with { Optim = "sgd" },
            _ => args with { Device = "cpu" },
        };
        var e = Assert.Throws<ArgumentException>(args.Validate);
        Assert.Equal(field, e.ParamName);
        Assert.Contains("CudaGraphs", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_trainer_on_the_cpu_with_cuda_graphs_fails_at_construction()
    {
        using var tmp = new TempDir();
        using var pm = TrajectoryReplay.LoadInitial("opt-lora");
        var args = TrajectoryReplay.Args("opt-lora", tmp.Path) with { CudaGraphs = true };
        var e = Assert.Throws<ArgumentException>(() => new Trainer(pm, args, trainDataset: TrajectoryReplay.Rows("opt-lora"), dataCollator: new DefaultDataCollator()));
        Assert.Contains("CudaGraphs", e.Message, StringComparison.Ordinal);
        Assert.Contains("cpu", e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Capturing_without_a_cuda_libtorch_says_why()
    {
        Assert.NotNull(CudaGraphTrainStep.Unavailable);                     // the test machine's libtorch is CPU-only
        using var pm = TrajectoryReplay.LoadInitial("opt-lora");
        using var opt = Optimizer(pm);
        var e = Assert.Throws<NotSupportedException>(() => new CudaGraphTrainStep(pm, opt, Trained(pm), maxGradNorm: 1.0));
        Assert.Contains("unavailable", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Eager_body_counts_steps_on_the_host_and_resumes_bit_equal_from_a_saved_optimizer()
    {
        using var tmp = new TempDir();
        var batches = Batches();
        // one run of 4 steps
        var (lossesA, weightsA) = Train(batches, 0, 4, save: null, load: null);
        // 2 steps, save the optimizer, then a fresh model/optimizer resumes from the weights and optimizer state
        var (first, _) = Train(batches, 0, 2, save: tmp.Path, load: null);
        var (second, weightsB) = Train(batches, 2, 4, save: null, load: tmp.Path);
        Assert.Equal(lossesA, first.Concat(second).ToArray());
        Assert.Equal(weightsA.Keys.Order(), weightsB.Keys.Order());
        foreach (var (k, v) in weightsA) Assert.True(v.SequenceEqual(weightsB[k]), $"{k} differs after resuming");
    }

    [Fact]
    public void A_zero_learning_rate_step_leaves_the_parameters_exactly_as_they_were()
    {
        // a warm-up's first step has lr = 0; torch's capturable formula divides by -lr (0/0 = NaN where v = 0, e.g.
        // every lora_A element while lora_B is still zero)
        using var pm = TrajectoryReplay.LoadInitial("opt-lora");
        pm.train();
        using (no_grad())
            foreach (var (name, p) in pm.named_parameters())
                if (name.Contains("lora_B", StringComparison.Ordinal)) p.zero_();          // as PEFT's init: lora_A's gradients are 0
        using var opt = Optimizer(pm);
        var trained = Trained(pm);
        var before = trained.Select(p => p.detach().clone().DetachFromDisposeScope()).ToList();
        using var step = new CudaGraphTrainStep(pm, opt, trained, maxGradNorm: 1.0, useGraphs: false);
        var batches = Batches();
        ModelInput Input(int k) => new() { InputIds = batches[k]["input_ids"], AttentionMask = batches[k]["attention_mask"], Labels = batches[k]["labels"] };
        opt.SetLr(0);
        step.Run(Input(0));
        for (int i = 0; i < trained.Count; i++)
            Assert.True(trained[i].eq(before[i]).all().item<bool>(), $"parameter {i} changed (or became NaN) at lr = 0");
        opt.SetLr(1e-3);
        step.Run(Input(1));
        Assert.All(trained, p => Assert.True(p.isfinite().all().item<bool>(), "a parameter is not finite after the lr = 0 step"));
        Assert.Contains(Enumerable.Range(0, trained.Count), i => !trained[i].eq(before[i]).all().item<bool>());
        foreach (var t in before) t.Dispose();
    }

    [Fact]
    public void Under_forbidden_host_reads_an_all_ones_mask_takes_the_mask_path_with_the_same_logits()
    {
        using var pm = TrajectoryReplay.LoadInitial("opt-lora");
        pm.eval();
        using var scope = NewDisposeScope();
        var ids = Batches()[0]["input_ids"];
        var mask = ones_like(ids);
        Tensor fast, masked;
        using (no_grad())
        {
            fast = pm.forward(new ModelInput { InputIds = ids, AttentionMask = mask }).Logits!;
            using (HostReads.Forbid()) masked = pm.forward(new ModelInput { InputIds = ids, AttentionMask = mask }).Logits!;
        }
        TensorAssert.Close(fast, masked, 1e-5, what: "logits, is_causal path vs explicit mask");
    }

    private static AdamW Optimizer(PeftModel pm)
    {
        var named = pm.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        var group = new ParamGroup(named.Select(p => p.name).ToList(), named.Select(p => p.parameter).ToList(), WeightDecay: 0.01) { Lr = 1e-3 };
        return new AdamW([group]);
    }

    private static List<Tensor> Trained(PeftModel pm) => pm.parameters().Where(p => p.requires_grad).Select(p => (Tensor)p).ToList();

    private static List<Dictionary<string, Tensor>> Batches()
    {
        var rows = TrajectoryReplay.Rows("opt-lora");
        var collator = new DefaultDataCollator();
        return Enumerable.Range(0, 3).Select(b => collator.Collate(Enumerable.Range(4 * b, 4).Select(i => rows[i]).ToList())).ToList();
    }

    // Steps [from, to) over the three batches (cycled), lr decaying per step; optionally saves or loads the optimizer
    // (and the trained weights) around them.
    private static (double[] Losses, Dictionary<string, float[]> Weights) Train(List<Dictionary<string, Tensor>> batches, int from, int to, string? save, string? load)
    {
        using var pm = TrajectoryReplay.LoadInitial("opt-lora");
        pm.train();
        using var opt = Optimizer(pm);
        if (load is not null)
        {
            using var saved = SafetensorsFile.Open(Path.Combine(load, "weights.safetensors"));
            using (no_grad())
                foreach (var (name, p) in pm.named_parameters().Where(p => p.parameter.requires_grad))
                {
                    using var t = saved.GetTensor(name);
                    p.copy_(t);
                }
            opt.Load(load);
        }
        using var step = new CudaGraphTrainStep(pm, opt, Trained(pm), maxGradNorm: 1.0, useGraphs: false);
        var losses = new List<double>();
        for (int k = from; k < to; k++)
        {
            var b = batches[k % batches.Count];
            opt.SetLr(1e-3 * (1 - k / 8.0));
            var (loss, _) = step.Run(new ModelInput { InputIds = b["input_ids"], AttentionMask = b["attention_mask"], Labels = b["labels"] });
            losses.Add(loss.item<float>());
        }
        Assert.Equal(to - from, step.EagerSteps);
        foreach (int i in Enumerable.Range(0, opt.Groups[0].Params.Count))
            Assert.Equal(to, (int)opt.StateTensor(i, "step")!.item<float>());   // the host counters checkpoints save
        if (save is not null)
        {
            opt.Save(save);
            SafetensorsWriter.Save(Path.Combine(save, "weights.safetensors"),
                pm.named_parameters().Where(p => p.parameter.requires_grad).ToDictionary(p => p.name, p => (Tensor)p.parameter));
        }
        var weights = pm.named_parameters().Where(p => p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter.detach().cpu().data<float>().ToArray());
        return (losses.ToArray(), weights);
    }
}
