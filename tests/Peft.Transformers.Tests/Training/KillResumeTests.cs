using System.Diagnostics;
using System.Text.Json.Nodes;
using Peft.Testing;
using Xunit.Abstractions;

namespace Peft.Transformers.Tests.Training;

/// <summary>
/// The real thing: the child process <c>Peft.Trainer.KillChild</c> trains with a checkpoint after every step and is
/// killed with SIGKILL at random moments, half of them while a checkpoint is being written (a temporary checkpoint
/// folder exists). After every kill each published <c>checkpoint-*</c> must verify, and the run resumed from "last"
/// until it finishes must log the same losses and end with the same adapter bytes as an uninterrupted run.
/// CI runs 3 kills; set <c>PEFT_SLOW_TESTS=1</c> for 24 kills over a longer run.
/// </summary>
public class KillResumeTests(ITestOutputHelper output)
{
    private static bool Slow => Environment.GetEnvironmentVariable("PEFT_SLOW_TESTS") == "1";

    [Fact]
    public void KilledAndResumedRunEqualsUninterruptedRun()
    {
        int kills = Slow ? 24 : 3;
        int steps = Slow ? 24 : 9;
        using var reference = new TempDir();
        using var killed = new TempDir();
        var uninterrupted = RunChild(reference.Path, steps, killAfter: null, killInSave: false);
        Assert.Equal(0, uninterrupted.ExitCode);
        var rng = new Random(2026);
        int done = 0, inSave = 0, launches = 0, restarts = 0;
        while (true)
        {
            bool killThis = done < kills;
            bool duringSave = killThis && done % 2 == 1;
            // Kill early in the training time still ahead (measured on the uninterrupted run, process exit included), so a fast
            // machine does not finish the run before the kill lands.
            int saved = CheckpointFolder.Last(killed.Path) is { } last ? int.Parse(Path.GetFileName(last)["checkpoint-".Length..], System.Globalization.CultureInfo.InvariantCulture) : 0;
            double aheadMs = uninterrupted.TrainMs * (steps - saved) / steps;
            var delay = TimeSpan.FromMilliseconds(rng.NextDouble() * 0.35 * aheadMs);
            var r = RunChild(killed.Path, steps, killThis ? delay : null, duringSave);
            launches++;
            foreach (var c in CheckpointFolder.Sorted(killed.Path)) CheckpointFolder.Verify(c);
            if (r.Killed)
            {
                done++;
                if (r.KilledInSave) inSave++;
                continue;
            }
            // A kill sent after the child printed DONE (while the process was exiting) ends it with 137: it had finished.
            Assert.True(r.ExitCode == 0 || r.KillSent, $"child failed with exit code {r.ExitCode}: {r.Output}");
            Assert.True(r.Output.Contains("DONE", StringComparison.Ordinal), $"child exited without finishing: {r.Output}");
            if (done >= kills) break;
            // The run finished before the kill landed (a timing race, not a failure): start the killed run over.
            Assert.True(++restarts <= 3 * kills, $"the child finished before being killed {restarts} times");
            Directory.Delete(killed.Path, recursive: true);
            Directory.CreateDirectory(killed.Path);
        }
        output.WriteLine($"{done} kills ({inSave} while a checkpoint was being written), {launches} launches, {restarts} restarts");
        Assert.Equal(kills, done);
        Assert.True(inSave >= 1 || !Slow, "no kill landed during a save");
        AssertSameLosses(reference.Path, killed.Path, steps);
        TrajectoryFixtureTests.CompareAdapters(Path.Combine(reference.Path, "final"), Path.Combine(killed.Path, "final"), "killed run", atol: 0);
        AssertSameBytes(Path.Combine(reference.Path, "final", "adapter_model.safetensors"), Path.Combine(killed.Path, "final", "adapter_model.safetensors"));
    }

    private static void AssertSameLosses(string a, string b, int steps)
    {
        static List<JsonNode> Steps(string dir) =>
            JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "trainer_state.json")))!["log_history"]!.AsArray()
                .Where(e => e!["loss"] is not null).Select(e => e!).ToList();
        var x = Steps(a);
        var y = Steps(b);
        Assert.Equal(steps, x.Count);
        Assert.Equal(steps, y.Count);
        for (int i = 0; i < steps; i++)
            foreach (var key in new[] { "loss", "grad_norm", "learning_rate", "step" })
                Assert.True(x[i][key]!.GetValue<double>() == y[i][key]!.GetValue<double>(), $"step {i + 1} {key}: {y[i][key]} vs uninterrupted {x[i][key]}");
    }

    private static void AssertSameBytes(string a, string b) => Assert.True(File.ReadAllBytes(a).AsSpan().SequenceEqual(File.ReadAllBytes(b)), $"{b} differs from {a}");

    // Killed: the kill landed before the child finished; KillSent: a kill was sent at all (it may have landed after DONE).
    private sealed record ChildResult(int ExitCode, bool Killed, bool KilledInSave, string Output, double TrainMs, bool KillSent);

    // Starts the child; kills it (SIGKILL) after `killAfter`, or — with killInSave — at the first moment after
    // `killAfter` that a temporary checkpoint folder exists.
    private static ChildResult RunChild(string outputDir, int steps, TimeSpan? killAfter, bool killInSave)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "Peft.Trainer.KillChild.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { dll, outputDir, steps.ToString(System.Globalization.CultureInfo.InvariantCulture) }) psi.ArgumentList.Add(a);
        using var p = new Process { StartInfo = psi };
        var text = new System.Text.StringBuilder();
        using var started = new ManualResetEventSlim();
        void OnLine(object _, DataReceivedEventArgs e)
        {
            if (e.Data is null) return;
            lock (text) text.AppendLine(e.Data);
            if (e.Data.StartsWith("START", StringComparison.Ordinal)) started.Set();
        }
        p.OutputDataReceived += OnLine;
        p.ErrorDataReceived += OnLine;
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        bool killed = false, inSave = false;
        var training = new Stopwatch();
        if (killAfter is null && started.Wait(TimeSpan.FromSeconds(60))) training.Start();
        if (killAfter is { } delay && started.Wait(TimeSpan.FromSeconds(60)))
        {
            training.Start();
            var clock = Stopwatch.StartNew(); // from the start of training (model loaded, checkpoint restored)
            while (!p.HasExited && clock.Elapsed < TimeSpan.FromSeconds(60))
            {
                bool ready = clock.Elapsed >= delay;
                bool saving = Directory.EnumerateDirectories(outputDir, ".tmp-checkpoint-*").Any();
                if (ready && (!killInSave || saving))
                {
                    p.Kill(); // SIGKILL on Linux
                    (killed, inSave) = (true, saving);
                    break;
                }
                Thread.SpinWait(2000);
            }
        }
        if (!p.WaitForExit(120_000)) { p.Kill(); throw new TimeoutException("child did not finish in 120 s"); }
        p.WaitForExit();
        training.Stop();
        string all;
        lock (text) all = text.ToString();
        return new ChildResult(p.ExitCode, killed && !all.Contains("DONE", StringComparison.Ordinal), inSave, all, training.Elapsed.TotalMilliseconds, killed);
    }
}
