using System.Diagnostics;
using System.Text.Json;
using Peft.Datasets;

namespace Peft.Fuzz;

/// <summary>What one input did.</summary>
public enum Outcome
{
    /// <summary>Loaded (and used) without error.</summary>
    Accepted,

    /// <summary>Refused with a documented exception type whose message names the file.</summary>
    Rejected,

    /// <summary>Anything else: an undocumented exception, a message not naming the file, or a hang.</summary>
    Crash,
}

/// <summary>One crashing input: the bytes and what happened.</summary>
public sealed record FuzzFailure(string Format, int Index, byte[] Input, string What);

/// <summary>Counts of one format's run.</summary>
public sealed record FuzzReport(string Format, int Inputs, int Accepted, int Rejected, IReadOnlyList<FuzzFailure> Failures, TimeSpan Elapsed)
{
    /// <summary>One line for logs and the note.</summary>
    public override string ToString() =>
        $"{Format}: {Inputs} inputs, {Accepted} accepted, {Rejected} rejected, {Failures.Count} crashes, {Elapsed.TotalSeconds:F1} s";
}

/// <summary>
/// Drives a <see cref="FuzzTarget"/>: mutates seeds with a fixed-seed <see cref="Mutator"/>, writes each input into a
/// fresh copy of the target's folder, runs the reader with a per-input time limit and classifies the result.
/// The documented failure set is <see cref="IsDocumented"/>; its message must name the file.
/// </summary>
public static class FuzzRunner
{
    /// <summary>Per-input wall-clock limit (generous: the CI machine is a shared 2-core box).</summary>
    public static TimeSpan InputTimeLimit { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// The exception types a reader may throw for bad input (documented in docs/ARCHITECTURE.md, "Reliability").
    /// <see cref="ArgumentException"/> covers argument validation; its subclass <see cref="ArgumentOutOfRangeException"/>
    /// from a collection indexer would not name the file and so still counts as a crash.
    /// </summary>
    public static bool IsDocumented(Exception e) => e is InvalidDataException or FormatException or JsonException
        or NotSupportedException or ArgumentException or FileNotFoundException or DatasetLoadException or KeyNotFoundException;

    /// <summary>Classifies one exception thrown for an input whose file is <paramref name="file"/>.</summary>
    public static (Outcome Outcome, string What) Classify(Exception e, string file)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } a) e = a.InnerExceptions[0];
        if (e is System.Reflection.TargetInvocationException { InnerException: { } inner }) e = inner;
        var name = Path.GetFileName(file);
        string What() => $"{e.GetType().FullName}: {e.Message}\n{e.StackTrace}";
        if (!IsDocumented(e)) return (Outcome.Crash, "undocumented exception " + What());
        if (!e.Message.Contains(name, StringComparison.Ordinal)) return (Outcome.Crash, $"message does not name {name}: " + What());
        return (Outcome.Rejected, "");
    }

    /// <summary>Runs one input (already written to disk) through the target with the time limit.</summary>
    public static (Outcome Outcome, string What) RunOne(FuzzTarget target, string dir)
    {
        var file = Path.Combine(dir, target.FileName);
        var task = Task.Run(() => target.Run(dir));
        try
        {
            if (!task.Wait(InputTimeLimit)) return (Outcome.Crash, $"hang: no result after {InputTimeLimit.TotalSeconds} s");
            return (Outcome.Accepted, "");
        }
        catch (Exception e)
        {
            return Classify(e, file);
        }
    }

    /// <summary>Runs <paramref name="inputs"/> mutated inputs of one target from a fixed seed.</summary>
    public static FuzzReport Run(FuzzTarget target, int inputs, int seed, int maxFailuresKept = 20)
    {
        var sw = Stopwatch.StartNew();
        // Not HashCode.Combine: its per-process random seed made every run mutate different bytes.
        var rng = new Random(unchecked(seed * 486187739 + StableHash(target.Name)));
        var mutator = new Mutator(rng);
        var seeds = target.Seeds;
        var failures = new List<FuzzFailure>();
        int accepted = 0, rejected = 0;
        using var work = new Peft.Testing.TempDir();
        for (int i = 0; i < inputs; i++)
        {
            var s = seeds[rng.Next(seeds.Count)];
            var other = seeds[rng.Next(seeds.Count)];
            var input = target.Mutate(mutator, s, other);
            var dir = Path.Combine(work.Path, "i" + (i % 2));
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
            Directory.CreateDirectory(dir);
            target.Prepare(dir);
            File.WriteAllBytes(Path.Combine(dir, target.FileName), input);
            var (outcome, what) = RunOne(target, dir);
            switch (outcome)
            {
                case Outcome.Accepted: accepted++; break;
                case Outcome.Rejected: rejected++; break;
                default:
                    if (failures.Count < maxFailuresKept) failures.Add(new FuzzFailure(target.Name, i, input, what));
                    else failures.Add(new FuzzFailure(target.Name, i, [], what));
                    if (what.StartsWith("hang", StringComparison.Ordinal)) i = inputs; // a stuck worker: stop this format
                    break;
            }
        }
        return new FuzzReport(target.Name, inputs, accepted, rejected, failures, sw.Elapsed);
    }

    /// <summary>Writes the kept failing inputs to <paramref name="outDir"/> (one file per input plus a .txt with the error).</summary>
    public static void SaveFailures(FuzzReport report, string outDir)
    {
        Directory.CreateDirectory(outDir);
        foreach (var f in report.Failures.Where(f => f.Input.Length > 0))
        {
            var baseName = Path.Combine(outDir, $"{f.Format}-{f.Index}");
            File.WriteAllBytes(baseName + ".bin", f.Input);
            File.WriteAllText(baseName + ".txt", f.What);
        }
    }

    private static int StableHash(string s)
    {
        int h = 17;
        foreach (var c in s) h = unchecked(h * 31 + c);
        return h;
    }
}
