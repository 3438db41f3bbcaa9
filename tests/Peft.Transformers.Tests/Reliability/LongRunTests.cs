using System.Diagnostics;
using Peft.Core;
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
/// The figures are written to the test output.
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
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var proc = Process.GetCurrentProcess();
        long tensorsBefore = LeakCheck.LiveTensors;
        proc.Refresh();
        long rssBefore = proc.WorkingSet64;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++) step();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        proc.Refresh();
        long rssAfter = proc.WorkingSet64;
        long tensorGrowth = LeakCheck.LiveTensors - tensorsBefore;
        double drift = (double)(rssAfter - rssBefore) / rssBefore;
        output.WriteLine($"{what}: {iterations} iterations after {warm} warm-up, {sw.Elapsed.TotalSeconds:F1} s, live tensors {tensorsBefore} -> {LeakCheck.LiveTensors}, RSS {rssBefore / 1048576.0:F1} -> {rssAfter / 1048576.0:F1} MiB ({drift:P2})");
        Assert.True(tensorGrowth <= 0, $"{what}: {tensorGrowth} live tensors leaked over {iterations} iterations");
        if (Slow) Assert.True(drift < 0.05, $"{what}: RSS grew {drift:P2} after warm-up");
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
