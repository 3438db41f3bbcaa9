using Peft.Transformers.Hub;

namespace Peft.Samples.Tests;

/// <summary>The samples' console bar for Hub downloads (samples/Shared/DownloadProgressBar.cs).</summary>
public class DownloadProgressBarTests
{
    [Fact]
    public void EachFileGetsOneLineThatEndsWhenItCompletes()
    {
        var console = new StringWriter();
        var bar = new DownloadProgressBar(console);
        bar.Report(new DownloadProgress("org/m", "config.json", 0, 2_000_000));
        bar.Report(new DownloadProgress("org/m", "config.json", 1_000_000, 2_000_000)); // within 100 ms: skipped
        bar.Report(new DownloadProgress("org/m", "config.json", 2_000_000, 2_000_000)); // done: always drawn
        bar.Report(new DownloadProgress("org/m", "model.safetensors", 3_000_000, null)); // unknown size
        bar.Finish();
        var lines = console.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        var frames = lines[0].Split('\r', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, frames.Length);
        Assert.Contains("[------------------------]   0% 0.0/2.0 MB", frames[0]);
        Assert.Contains("[########################] 100% 2.0/2.0 MB", frames[1]);
        Assert.StartsWith("model.safetensors", lines[1].TrimStart('\r'));
        Assert.Contains(" 3.0 MB", lines[1]);
        Assert.Equal(["config.json"], bar.Completed);
    }

    [Fact]
    public void AResumedDownloadShowsTheBytesAlreadyThere()
    {
        var line = DownloadProgressBar.Line(new DownloadProgress("org/m", "model.safetensors", 750, 1000), seconds: 0, fetched: 0);
        Assert.Contains("[##################------]  75% 0.0/0.0 MB", line);
    }
}
