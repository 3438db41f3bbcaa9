using Xunit.Abstractions;

namespace Peft.Fuzz;

/// <summary>
/// CI mode of the fuzz harness: a fixed seed and a budget per format (<c>PEFT_FUZZ_INPUTS</c> overrides it: the long
/// mode is <c>PEFT_FUZZ_INPUTS=100000 dotnet test tests/Peft.Fuzz</c>; <c>PEFT_FUZZ_SEED</c> changes the seed;
/// <c>PEFT_FUZZ_OUT</c> keeps crashing inputs there). Every input must be accepted or refused with a documented
/// exception naming the file (see <see cref="FuzzRunner.Classify"/>).
/// </summary>
[Collection(SharedTargets.Name)]
public sealed class FuzzTests(ITestOutputHelper output)
{
    /// <summary>Inputs per format in CI mode (costlier readers get a share; see <see cref="Budget"/>).</summary>
    public const int CiInputs = 1000;

    public static TheoryData<string> Formats()
    {
        var d = new TheoryData<string>();
        foreach (var t in Targets.All) d.Add(t.Name);
        return d;
    }

    /// <summary>The number of inputs for a format: the CI budget (less for whole-model loads) or PEFT_FUZZ_INPUTS.</summary>
    public static int Budget(string format)
    {
        var env = Environment.GetEnvironmentVariable("PEFT_FUZZ_INPUTS");
        if (int.TryParse(env, out var n) && n > 0) return n;
        return format switch
        {
            "adapter_weights" => 200,
            _ when format.StartsWith("checkpoint-", StringComparison.Ordinal) => 250,
            "chat_template" => 2000,
            "tokenizer.json" or "vocab.json" or "merges.txt" or "vocab.txt" or "special_tokens_map" or "tokenizer_config" => 400,
            _ => CiInputs,
        };
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Mutated_inputs_are_loaded_or_refused_with_a_documented_error_naming_the_file(string format)
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("PEFT_FUZZ_SEED"), out var s) ? s : 16;
        var report = FuzzRunner.Run(Targets.Get(format), Budget(format), seed);
        output.WriteLine(report.ToString());
        var outDir = Environment.GetEnvironmentVariable("PEFT_FUZZ_OUT");
        if (!string.IsNullOrEmpty(outDir)) FuzzRunner.SaveFailures(report, outDir);
        Assert.True(report.Failures.Count == 0 && report.Accepted + report.Rejected == report.Inputs,
            $"{report}\n" + string.Join("\n---\n", report.Failures.Take(3).Select(f => $"input {f.Index}: {f.What}")));
        if (Targets.Get(format).CanRefuse) Assert.True(report.Rejected > 0, $"{format}: no input was refused; the mutations do not reach the reader");
    }
}
