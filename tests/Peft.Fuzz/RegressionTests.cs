namespace Peft.Fuzz;

/// <summary>
/// Every crashing input the fuzzer found, kept as a file under <c>Regressions/&lt;format&gt;/</c> (the format is the
/// target's name). Each must now be accepted or refused with a documented error naming the file.
/// </summary>
[Collection(SharedTargets.Name)]
public sealed class RegressionTests
{
    public static TheoryData<string, string> Cases()
    {
        var d = new TheoryData<string, string>();
        var root = Path.Combine(AppContext.BaseDirectory, "Regressions");
        foreach (var dir in Directory.GetDirectories(root).Order(StringComparer.Ordinal))
            foreach (var f in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
                d.Add(Path.GetFileName(dir), Path.GetFileName(f));
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Former_crash_is_loaded_or_refused_cleanly(string format, string file)
    {
        var target = Targets.Get(format);
        using var work = new Peft.Testing.TempDir();
        target.Prepare(work.Path);
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Regressions", format, file), work.File(target.FileName));
        var (outcome, what) = FuzzRunner.RunOne(target, work.Path);
        Assert.True(outcome != Outcome.Crash, what);
    }
}
