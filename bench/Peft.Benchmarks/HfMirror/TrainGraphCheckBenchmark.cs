using Peft.Core;
using Peft.Transformers;
using Peft.Transformers.Optimization;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// <c>train_graph_check</c> (proof, no Python side): the <c>lora_step</c> and <c>full_step</c> settings trained for
/// <see cref="Steps"/> steps from the same seed in four runs: (classic) the eager step with AdamW's host-scalar form;
/// (form A) and (form B) <see cref="CudaGraphTrainStep"/> with graphs off, i.e. the capturable AdamW run eagerly, twice
/// (B is the control: how far two eager runs of the same kernels drift apart on this GPU); (graph) the same step
/// captured and replayed. Each step reads a different random batch and a different lr (linear decay), clips at norm 1,
/// and step 5 has a shorter sequence (it runs eagerly under graphs: the shape-change path). Reports per run the losses,
/// gradient norms, and the max |difference| of losses and of every trained parameter against form A; fails (exit
/// code ≠ 0) unless graph−A ≤ 10·(B−A) + 1e-5·|loss| and the graph was replayed for every same-shape step.
/// <c>PEFT_GRAPH_CHECK_DROPOUT=p</c> turns on the model's and LoRA's dropout: then the check also proves that replays
/// draw the same dropout masks as the eager steps (the CUDA generator's offset advanced per replay).
/// </summary>
public sealed class TrainGraphCheckBenchmark : IBenchmark
{
    private const int Steps = 8;
    // the step with a shorter sequence (eager under graphs); PEFT_GRAPH_CHECK_SHORT_STEP=-1: every step the same shape
    private static readonly int ShortStep = int.TryParse(Environment.GetEnvironmentVariable("PEFT_GRAPH_CHECK_SHORT_STEP"), out int s) ? s : 5;
    // PEFT_GRAPH_CHECK_DROPOUT=p: the model's dropout and LoRA's dropout p (draws from the CUDA generator, which a
    // replayed graph must advance as eager steps do: the same masks in the graph run as in form A)
    private static readonly double Dropout = double.TryParse(Environment.GetEnvironmentVariable("PEFT_GRAPH_CHECK_DROPOUT"),
        System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double d) ? d : 0.0;

    /// <inheritdoc />
    public string Name => "train_graph_check";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        bool cuda = options.Device == "cuda";
        var failures = new List<string>();
        foreach (bool lora in new[] { true, false })
        {
            var classic = Train(options, lora, Mode.Classic);
            var formA = Train(options, lora, Mode.FormA);
            var formB = Train(options, lora, Mode.FormB);
            var graph = cuda ? Train(options, lora, Mode.Graph) : null;
            double scale = formA.Losses.Max(Math.Abs);
            double controlLoss = MaxDiff(formA.Losses, formB.Losses), controlParam = MaxDiff(formA.Params, formB.Params);
            var row = new Dictionary<string, object?>
            {
                ["case"] = lora ? "lora_step" : "full_step", ["model"] = options.Model, ["dtype"] = options.Dtype, ["steps"] = Steps,
                ["losses_form_a"] = formA.Losses.Select(x => Math.Round(x, 7)).ToArray(),
                ["grad_norms_form_a"] = formA.Norms.Select(x => Math.Round(x, 6)).ToArray(),
                ["losses_form_b"] = formB.Losses.Select(x => Math.Round(x, 7)).ToArray(),
                ["losses_graph"] = graph?.Losses.Select(x => Math.Round(x, 7)).ToArray(),
                ["grad_norms_graph"] = graph?.Norms.Select(x => Math.Round(x, 6)).ToArray(),
                ["short_step"] = ShortStep, ["dropout"] = Dropout,
                ["loss_diff_classic_vs_a"] = MaxDiff(formA.Losses, classic.Losses), ["param_diff_classic_vs_a"] = MaxDiff(formA.Params, classic.Params),
                ["loss_diff_b_vs_a"] = controlLoss, ["param_diff_b_vs_a"] = controlParam,
            };
            if (graph is not null)
            {
                double gLoss = MaxDiff(formA.Losses, graph.Losses), gParam = MaxDiff(formA.Params, graph.Params);
                row["loss_diff_graph_vs_a"] = gLoss;
                row["param_diff_graph_vs_a"] = gParam;
                row["norm_diff_graph_vs_a"] = MaxDiff(formA.Norms, graph.Norms);
                row["graph_replays"] = graph.Replays;
                row["graph_eager_steps"] = graph.EagerSteps;
                double paramScale = formA.Params.Max(Math.Abs);
                int expectedReplays = Steps - 1 - (ShortStep is > 0 and < Steps ? 1 : 0);
                bool ok = gLoss <= 10 * controlLoss + 1e-5 * scale && gParam <= 10 * controlParam + 1e-5 * paramScale && graph.Replays == expectedReplays;
                row["pass"] = ok;
                if (!ok) failures.Add($"{row["case"]}: loss diff {gLoss:G3} (control {controlLoss:G3}), param diff {gParam:G3} (control {controlParam:G3}), replays {graph.Replays}/{expectedReplays}");
            }
            report(row);
        }
        if (failures.Count > 0) throw new InvalidOperationException("train_graph_check failed: " + string.Join("; ", failures));
    }

    private enum Mode { Classic, FormA, FormB, Graph }

    private sealed record Result(double[] Losses, double[] Norms, double[] Params, int Replays, int EagerSteps);

    private static Result Train(BenchmarkOptions options, bool lora, Mode mode)
    {
        var model = MirrorSetup.BuildModel(options, Dropout);
        if (options.Device == "cuda") cuda.manual_seed_all(options.Seed);          // LoRA's init and dropout draw on the model's device
        PeftModel? pm = lora ? PeftModel.GetPeftModel(model, MirrorSetup.Lora(Dropout)) : null;
        nn.Module<ModelInput, ModelOutput> net = pm is null ? model : pm;
        net.train();
        var trained = ((nn.Module)net).named_parameters().Where(p => p.parameter.requires_grad).Select(p => (Tensor)p.parameter).ToList();
        using var opt = MirrorSetup.Optimizer(net);
        using var step = mode == Mode.Classic ? null : new CudaGraphTrainStep(net, opt, trained, maxGradNorm: 1.0, useGraphs: mode == Mode.Graph);
        var (losses, norms) = (new List<double>(), new List<double>());
        for (int k = 0; k < Steps; k++)
        {
            using var scope = NewDisposeScope();
            int seq = MirrorSetup.Seq(options) / (k == ShortStep ? 2 : 1);
            var g = new Generator((ulong)(options.Seed + 100 + k));
            var ids = randint(3, MirrorSetup.Vocab(options), [MirrorSetup.Batch(options), seq], generator: g, dtype: ScalarType.Int64).to(MirrorSetup.DeviceOf(options));
            opt.SetLr(1e-3 * (1 - (double)k / Steps));
            var input = new ModelInput { InputIds = ids, Labels = ids };
            if (step is null)
            {
                var loss = net.forward(input).Loss!;
                loss.backward();
                norms.Add(GradClip.ClipGradNorm(trained, 1.0));
                opt.Step();
                opt.ZeroGrad();
                losses.Add(loss.to(ScalarType.Float64).item<double>());
            }
            else
            {
                var (loss, norm) = step.Run(input);
                losses.Add(loss.to(ScalarType.Float64).item<double>());
                norms.Add(norm.to(ScalarType.Float64).item<double>());
                opt.ZeroGrad();
            }
        }
        double[] flat;
        using (var scope = NewDisposeScope())
            flat = cat(trained.Select(p => p.detach().reshape(-1).to(ScalarType.Float64)).ToArray()).cpu().data<double>().ToArray();
        var result = new Result(losses.ToArray(), norms.ToArray(), flat, step?.Replays ?? 0, step?.EagerSteps ?? Steps);
        step?.Dispose();
        pm?.Dispose();
        model.Dispose();
        return result;
    }

    private static double MaxDiff(double[] a, double[] b)
    {
        double m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs(a[i] - b[i]));
        return m;
    }
}
