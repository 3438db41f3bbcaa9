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

    /// <summary>One JSON line: the counts, the seconds and the first line of each crash.</summary>
    public string ToJson() => JsonSerializer.Serialize(new
    {
        format = Format, inputs = Inputs, accepted = Accepted, rejected = Rejected, crashes = Failures.Count,
        seconds = Math.Round(Elapsed.TotalSeconds, 1),
        crash_kinds = Failures.Select(f => $"input {f.Index}: " + f.What.Split('\n')[0]).Take(20).ToArray(),
    });
}

/// <summary>
/// Drives a <see cref="FuzzTarget"/>: mutates seeds with a fixed-seed <see cref="Mutator"/>, writes each input into a
/// fresh copy of the target's folder (or one folder prepared once, see <see cref="FuzzTarget.PreparesOnce"/>), runs the reader with a per-input time limit and classifies the result.
/// The documented failure set is <see cref="IsDocumented"/>; its message must name the file.
/// </summary>
public static class FuzzRunner
{
    /// <summary>
    /// The fuzz process works on tiny tensors: one intra-op thread. With torch's default pool (a thread per core) one
    /// tiny training step took 300 ms instead of 6 ms on a loaded 2-core machine (threads spinning for one another).
    /// </summary>
    static FuzzRunner()
    {
        TorchSharp.torch.set_num_threads(1);
        RemoveStaleScratch();
    }

    /// <summary>
    /// Where inputs are written: a memory file system (<c>/dev/shm</c>) when there is one, else the temp folder. Inputs
    /// are rewritten thousands of times a minute and never need to reach a disk.
    /// </summary>
    public static string ScratchRoot { get; } = FindScratchRoot();

    /// <summary>Per-input wall-clock limit (generous: the CI machine is a shared 2-core box).</summary>
    public static TimeSpan InputTimeLimit { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// The exception types a reader may throw for bad input (documented in docs/ARCHITECTURE.md, "Reliability").
    /// <see cref="ArgumentException"/> covers argument validation; its subclass <see cref="ArgumentOutOfRangeException"/>
    /// from a collection indexer would not name the file and so still counts as a crash.
    /// </summary>
    public static bool IsDocumented(Exception e) => e is InvalidDataException or FormatException or JsonException
        or NotSupportedException or ArgumentException or FileNotFoundException or DatasetLoadException or KeyNotFoundException
        or Peft.Transformers.Tokenization.ChatTemplates.TemplateException;

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

    /// <summary>
    /// Runs <paramref name="inputs"/> mutated inputs of one target from a fixed seed, or as many as fit in
    /// <paramref name="budget"/> (the report counts the inputs actually run).
    /// </summary>
    public static FuzzReport Run(FuzzTarget target, int inputs, int seed, int maxFailuresKept = 20, TimeSpan? budget = null)
    {
        var sw = Stopwatch.StartNew();
        // Not HashCode.Combine: its per-process random seed made every run mutate different bytes.
        var rng = new Random(unchecked(seed * 486187739 + StableHash(target.Name)));
        var mutator = new Mutator(rng);
        var seeds = target.Seeds;
        var failures = new List<FuzzFailure>();
        int accepted = 0, rejected = 0, done = 0;
        var work = Path.Combine(ScratchRoot, $"peft-fuzz-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            for (int i = 0; i < inputs && !(sw.Elapsed > budget); i++, done++)
            {
                var s = seeds[rng.Next(seeds.Count)];
                var other = seeds[rng.Next(seeds.Count)];
                var input = target.Mutate(mutator, s, other);
                var dir = target.PreparesOnce ? work : Path.Combine(work, "i" + (i % 2));
                if (!target.PreparesOnce || i == 0)
                {
                    if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
                    Directory.CreateDirectory(dir);
                    target.Prepare(dir);
                }
                File.WriteAllBytes(Path.Combine(dir, target.FileName), input);
                var (outcome, what) = RunOne(target, dir);
                switch (outcome)
                {
                    case Outcome.Accepted: accepted++; break;
                    case Outcome.Rejected: rejected++; break;
                    default:
                        failures.Add(new FuzzFailure(target.Name, i, failures.Count < maxFailuresKept ? input : [], what));
                        if (what.StartsWith("hang", StringComparison.Ordinal)) i = inputs; // a stuck worker: stop this format
                        break;
                }
            }
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
        return new FuzzReport(target.Name, done, accepted, rejected, failures, sw.Elapsed);
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

    /// <summary>
    /// Deletes the <c>peft-fuzz-*-&lt;pid&gt;*</c> folders of fuzz processes that are gone: the test host is ended
    /// without running exit handlers, so the seed checkpoint and resume folders of a <c>dotnet test</c> run would
    /// otherwise stay in /dev/shm (memory) or the temp folder.
    /// </summary>
    private static void RemoveStaleScratch()
    {
        foreach (var root in new[] { ScratchRoot, Path.GetTempPath() }.Distinct(StringComparer.Ordinal))
        {
            IEnumerable<string> dirs;
            try { dirs = Directory.EnumerateDirectories(root, "peft-fuzz-*").ToList(); }
            catch (IOException) { continue; }
            catch (UnauthorizedAccessException) { continue; }
            foreach (var dir in dirs)
            {
                var pidPart = Path.GetFileName(dir).Split('-').FirstOrDefault(p => p.Length > 0 && p.All(char.IsAsciiDigit));
                if (pidPart is null || !int.TryParse(pidPart, out int pid) || pid == Environment.ProcessId || IsRunning(pid)) continue;
                try { Directory.Delete(dir, recursive: true); }
                catch (IOException) { }
                catch (UnauthorizedAccessException) { }
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static string FindScratchRoot()
    {
        const string shm = "/dev/shm";
        try
        {
            if (Directory.Exists(shm))
            {
                var probe = Path.Combine(shm, $"peft-fuzz-probe-{Environment.ProcessId}");
                Directory.CreateDirectory(probe);
                Directory.Delete(probe);
                return shm;
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return Path.GetTempPath();
    }

    private static int StableHash(string s)
    {
        int h = 17;
        foreach (var c in s) h = unchecked(h * 31 + c);
        return h;
    }
}
