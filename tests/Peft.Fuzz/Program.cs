using System.Globalization;
using System.Runtime.InteropServices;
using Peft.Core;
using Peft.Datasets;
using Peft.Testing;
using Peft.Transformers;

namespace Peft.Fuzz;

/// <summary>
/// Console entry of the test assembly (<c>dotnet exec Peft.Fuzz.dll ...</c>):
/// <c>--inputs N [--seed S] [--out DIR] [--format NAME,...] [--seconds T] [--json]</c> runs the fuzz long mode over
/// every format (or the named ones; at most T seconds per format) and prints one line per format (a JSON object with
/// <c>--json</c>); exit code 1 when any input crashed.
/// <c>--save-child DIR</c> is the child process of <see cref="KillDuringSaveTests"/>: it saves a PEFT adapter, a model
/// and a dataset (three formats) into DIR over and over, printing "ready" after the first round, until killed.
/// With <c>LIBTORCHSHARP</c> set (a machine without the TorchSharp-cpu runtime package, e.g. the GPU machine that lends
/// its Python torch libraries; tests/Peft.Fuzz/run-long-remote.sh), that native wrapper is loaded first.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (Environment.GetEnvironmentVariable("LIBTORCHSHARP") is { Length: > 0 } lts) NativeLibrary.Load(lts);
        if (args.Length >= 2 && args[0] == "--save-child") return SaveForever(args[1]);
        if (args.Length >= 2 && args[0] == "--inputs") return LongMode(args);
        Console.Error.WriteLine("usage: Peft.Fuzz --inputs N [--seed S] [--out DIR] [--format NAME,...] [--seconds T] [--json] | --save-child DIR");
        return 2;
    }

    private static int LongMode(string[] args)
    {
        int n = int.Parse(args[1], CultureInfo.InvariantCulture);
        int seed = Arg(args, "--seed") is { } s ? int.Parse(s, CultureInfo.InvariantCulture) : 16;
        TimeSpan? budget = Arg(args, "--seconds") is { } t ? TimeSpan.FromSeconds(double.Parse(t, CultureInfo.InvariantCulture)) : null;
        var only = Arg(args, "--format")?.Split(',');
        // Checkpoint formats alone need only the opt-tiny fixture (what a remote run carries), not every seed of Targets.
        var targets = only is not null && only.All(f => f.StartsWith("checkpoint-", StringComparison.Ordinal))
            ? CheckpointTargets.All().ToList()
            : Targets.All;
        int crashes = 0;
        foreach (var target in targets.Where(t => only is null || only.Contains(t.Name)))
        {
            var report = FuzzRunner.Run(target, n, seed, budget: budget);
            if (Arg(args, "--out") is { } outDir) FuzzRunner.SaveFailures(report, outDir);
            crashes += report.Failures.Count;
            Console.WriteLine(args.Contains("--json") ? report.ToJson() : report.ToString());
        }
        return crashes == 0 ? 0 : 1;
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static int SaveForever(string dir)
    {
        var config = AutoConfig.FromPretrained(Path.Combine(Fixtures.Model("opt-tiny"), "config.json"));
        using var model = AutoModelForCausalLM.FromConfig(config);
        var ds = Dataset.FromRows(Enumerable.Range(0, 2000).Select(i =>
            (IReadOnlyDictionary<string, object?>)new Dictionary<string, object?> { ["id"] = (long)i, ["text"] = new string('x', i % 50) }));
        for (long round = 0; ; round++)
        {
            model.SavePretrained(Path.Combine(dir, "model"));
            using (var pm = PeftModel.GetPeftModel(AutoModelForCausalLM.FromConfig(config), new LoraConfig { R = 4, TargetModules = ["q_proj", "v_proj"] }))
                pm.SavePretrained(Path.Combine(dir, "adapter"));
            ds.ToParquet(Path.Combine(dir, "data.parquet"));
            ds.ToJson(Path.Combine(dir, "data.jsonl"));
            ds.ToCsv(Path.Combine(dir, "data.csv"));
            if (round == 0) { Console.WriteLine("ready"); Console.Out.Flush(); }
        }
    }
}
