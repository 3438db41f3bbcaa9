using Peft.Core;
using Peft.Datasets;
using Peft.Testing;
using Peft.Transformers;

namespace Peft.Fuzz;

/// <summary>
/// Console entry of the test assembly (<c>dotnet exec Peft.Fuzz.dll ...</c>):
/// <c>--inputs N [--seed S] [--out DIR] [--format NAME,...]</c> runs the fuzz long mode over every format (or the
/// named ones) and prints one line per format;
/// <c>--save-child DIR</c> is the child process of <see cref="KillDuringSaveTests"/>: it saves a PEFT adapter, a model
/// and a dataset (three formats) into DIR over and over, printing "ready" after the first round, until killed.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length >= 2 && args[0] == "--save-child") return SaveForever(args[1]);
        if (args.Length >= 2 && args[0] == "--inputs")
        {
            int n = int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
            int seed = Arg(args, "--seed") is { } s ? int.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : 16;
            var only = Arg(args, "--format")?.Split(',');
            int crashes = 0;
            foreach (var t in Targets.All.Where(t => only is null || only.Contains(t.Name)))
            {
                var report = FuzzRunner.Run(t, n, seed);
                if (Arg(args, "--out") is { } outDir) FuzzRunner.SaveFailures(report, outDir);
                crashes += report.Failures.Count;
                Console.WriteLine(report);
            }
            return crashes == 0 ? 0 : 1;
        }
        Console.Error.WriteLine("usage: Peft.Fuzz --inputs N [--seed S] [--out DIR] [--format NAME,...] | --save-child DIR");
        return 2;
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
