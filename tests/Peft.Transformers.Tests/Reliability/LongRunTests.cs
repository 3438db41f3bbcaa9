using System.Diagnostics;
using Peft.Core;
using Peft.Core.Torch;
using Peft.Testing;
using Peft.Transformers;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Reliability;

/// <summary>
/// Long runs on tiny models: live tensors stay flat (LeakCheck) and, in slow mode, native memory too (RSS drift under 5%
/// after warm-up). Slow mode (PEFT_SLOW_TESTS=1): 1,000 LoRA training steps (plain AdamW loop), 1,000 generation calls,
/// 10,000 pipeline calls; default mode runs 1/100 of that and checks only the live-tensor count (RSS is too noisy there).
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
