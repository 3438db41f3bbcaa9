using System.Diagnostics;
using Peft.Core;
using Peft.Core.Torch;
using Peft.Testing;
using Peft.Transformers;
using Peft.Transformers.Tests.Training;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Reliability;

/// <summary>
/// Long runs on tiny models: live tensors stay flat (LeakCheck) and, in slow mode, native memory too (RSS drift under 5%
/// after warm-up). Slow mode (PEFT_SLOW_TESTS=1): 1,000 LoRA training steps (plain AdamW loop), 1,000 Trainer steps
/// each for LoRA and full fine-tuning, 1,000 generation calls, 10,000 pipeline calls; default mode runs 1/100 of that
/// and checks only the live-tensor count (RSS is too noisy there).
/// RSS is sampled 21 times over the run, each time after a full GC and <c>malloc_trim</c>, and the drift compares the
/// medians of the first and last three samples (see <see cref="SettledRss"/>). The figures are written to the test output.
/// </summary>
[Collection(LeakTestCollection.Name)]
public sealed class LongRunTests(ITestOutputHelper output)
{
    private static readonly bool Slow = Environment.GetEnvironmentVariable("PEFT_SLOW_TESTS") == "1";

    private static int Scaled(int n) => Slow ? n : Math.Max(5, n / 100);

    private void Measure(string what, int iterations, Action step)
    {
        int warm = Math.Max(5, iterations / 10);
        for (int i = 0; i < warm; i++) step();
        var proc = Process.GetCurrentProcess();
        int windows = Math.Min(Windows, iterations);
        var rss = new List<long>();
        var untrimmed = new List<long>();
        void Sample()
        {
            var (settled, before) = SettledRss(proc);
            rss.Add(settled);
            untrimmed.Add(before);
        }

        Sample();
        long tensorsBefore = LeakCheck.LiveTensors;
        int gen2Before = GC.CollectionCount(2);
        long jitBefore = System.Runtime.JitInfo.GetCompiledMethodCount();
        var sw = Stopwatch.StartNew();
        for (int w = 1, done = 0; w <= windows; w++)
        {
            for (int until = (int)((long)iterations * w / windows); done < until; done++) step();
            Sample();
        }
        long tensorGrowth = LeakCheck.LiveTensors - tensorsBefore;
        double drift = Drift(rss);
        output.WriteLine($"{what}: {iterations} iterations after {warm} warm-up, {sw.Elapsed.TotalSeconds:F1} s, live tensors {tensorsBefore} -> {LeakCheck.LiveTensors}, " +
            $"RSS (GC + malloc_trim before each sample; median of the first / last {Edge} of {rss.Count} samples) {Median(rss.Take(Edge)) / Mib:F1} -> {Median(rss.TakeLast(Edge)) / Mib:F1} MiB ({drift:P2}); " +
            $"without trim {Drift(untrimmed):P2}; samples {string.Join(" ", rss.Select(r => (r / Mib).ToString("F0", System.Globalization.CultureInfo.InvariantCulture)))} MiB; " +
            $"{GC.CollectionCount(2) - gen2Before} gen-2 GCs, {System.Runtime.JitInfo.GetCompiledMethodCount() - jitBefore} methods JIT-compiled during the run");
        Assert.True(tensorGrowth <= 0, $"{what}: {tensorGrowth} live tensors leaked over {iterations} iterations");
        if (Slow) Assert.True(drift < 0.05, $"{what}: RSS grew {drift:P2} after warm-up");
    }

    /// <summary>
    /// RSS with the managed heap collected and glibc's free arena pages handed back (<see cref="NativeHeap.Trim"/>, as
    /// the Trainer does after each CPU step), and the same before the trim. Without them one sample could catch a
    /// collection not yet run or free pages an arena kept: single-sample noise of a few MiB on a 220 MiB process.
    /// </summary>
    private static (long Settled, long Untrimmed) SettledRss(Process proc)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        proc.Refresh();
        long untrimmed = proc.WorkingSet64;
        NativeHeap.Trim();
        proc.Refresh();
        return (proc.WorkingSet64, untrimmed);
    }

    // RSS is sampled after each of 20 windows (and once before): the drift compares the median of the first 3 samples
    // with the median of the last 3, so one noisy sample cannot decide it; a steady leak still shows at 90% of its size.
    private const int Windows = 20;
    private const int Edge = 3;
    private const double Mib = 1048576.0;

    private static double Median(IEnumerable<long> xs)
    {
        var s = xs.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2.0;
    }

    private static double Drift(List<long> samples)
    {
        double first = Median(samples.Take(Edge)), last = Median(samples.TakeLast(Edge));
        return (last - first) / first;
    }

    [Fact]
    public void Lora_training_steps_keep_tensors_and_memory_flat()
    {
        using var lm = AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny"));
        using var pm = PeftModel.GetPeftModel(lm, new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM });
        pm.train();
        using var opt = optim.AdamW(pm.parameters().Where(p => p.requires_grad), 1e-3);
        using var ids = randint(4, 1000, [4, 32], dtype: ScalarType.Int64, generator: new Generator(16));
        var input = new ModelInput { InputIds = ids, AttentionMask = ones_like(ids), Labels = ids };
        Measure("LoRA training step", Scaled(1000), () =>
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            pm.forward(input).Loss!.backward();
            opt.step();
        });
        input.AttentionMask!.Dispose();
    }

    /// <summary>
    /// The Trainer's own loop (data loader over many epochs, multi-tensor AdamW, clipping, the linear schedule, logging,
    /// and its CPU heap rule: <c>NativeHeap.TrimIfGrown</c> after each step, no forced GC) on the opt-lora training
    /// fixture, LoRA and full fine-tuning. Sampled from a callback after every 1/20 of the timed steps: live tensors
    /// flat; in slow mode the settled RSS within 5 %, and the RSS as the step left it (GC'd, not trimmed: what the
    /// Trainer's rule alone keeps) never above the first sample by more than the rule's 64 MiB margin plus 5 %.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Trainer_steps_keep_tensors_and_memory_flat(bool lora)
    {
        using var dir = new TempDir();
        // LoRA: the fixture's initial adapter on opt-tiny; full: opt-tiny itself, every parameter trained
        using nn.Module<ModelInput, ModelOutput> model = lora ? TrajectoryReplay.LoadInitial("opt-lora") : AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny"));
        int steps = Scaled(1000), warm = Math.Max(5, steps / 10), windows = Math.Min(Windows, steps);
        var sampleAt = Enumerable.Range(0, windows + 1).Select(w => warm + (int)((long)steps * w / windows)).ToHashSet();   // after warm-up, then after each 1/windows of the steps
        var proc = Process.GetCurrentProcess();
        var (rss, untrimmed, tensors) = (new List<long>(), new List<long>(), new List<long>());
        var sampler = new StepSampler(step =>
        {
            if (!sampleAt.Contains(step)) return;
            var (settled, before) = SettledRss(proc);
            rss.Add(settled);
            untrimmed.Add(before);
            tensors.Add(LeakCheck.LiveTensors);
        });
        var args = TrajectoryReplay.Args("opt-lora", dir.Path) with { MaxSteps = warm + steps, LoggingSteps = Math.Max(1, steps / 10) };
        var trainer = new Trainer(model, args, trainDataset: TrajectoryReplay.Rows("opt-lora"), dataCollator: new DefaultDataCollator(), callbacks: [sampler]);
        var sw = Stopwatch.StartNew();
        trainer.Train();
        string what = lora ? "Trainer LoRA step" : "Trainer full step";
        output.WriteLine($"{what}: {steps} steps after {warm} warm-up, {sw.Elapsed.TotalSeconds:F1} s, live tensors {string.Join(" ", tensors)}; " +
            $"settled RSS {Median(rss.Take(Edge)) / Mib:F1} -> {Median(rss.TakeLast(Edge)) / Mib:F1} MiB ({Drift(rss):P2}); " +
            $"untrimmed {string.Join(" ", untrimmed.Select(r => (r / Mib).ToString("F0", System.Globalization.CultureInfo.InvariantCulture)))} MiB");
        Assert.Equal(windows + 1, rss.Count);
        Assert.True(tensors.Max() <= tensors[0], $"{what}: live tensors grew from {tensors[0]} to {tensors.Max()} over {steps} steps");
        if (!Slow) return;
        Assert.True(Drift(rss) < 0.05, $"{what}: settled RSS grew {Drift(rss):P2} after warm-up");
        long bound = (long)(untrimmed[0] * 1.05) + NativeHeap.StepTrimMarginBytes;
        Assert.True(untrimmed.Max() <= bound, $"{what}: RSS as the steps left it reached {untrimmed.Max() / Mib:F1} MiB, above {untrimmed[0] / Mib:F1} MiB + 5 % + the trim margin");
    }

    private sealed class StepSampler(Action<int> onStep) : ITrainerCallback
    {
        public void OnStepEnd(TrainingArguments args, TrainerState state, TrainerControl control) => onStep(state.GlobalStep);
    }

    [Fact]
    public void Generation_calls_keep_tensors_and_memory_flat()
    {
        using var lm = AutoModelForCausalLM.FromPretrained(Fixtures.Model("gpt2-tiny"));
        lm.eval();
        using var ids = tensor(new long[] { 5, 6, 7, 8 }, [1, 4]);
        var config = new GenerationConfig { MaxNewTokens = 8, DoSample = false };
        Measure("generation call", Scaled(1000), () =>
        {
            using var scope = NewDisposeScope();
            lm.Generate(ids, null, config);
        });
    }

    [Fact]
    public void Pipeline_calls_keep_tensors_and_memory_flat()
    {
        using var clf = (TextClassificationPipeline)Pipeline.Create("text-classification", Fixtures.Model("bert-tiny"));
        Measure("pipeline call", Scaled(10_000), () => clf.Run("Computers are useless. They can only give you answers.", topK: null));
    }
}
