using System.Globalization;
using Peft.Transformers.Hub;

namespace Peft.Samples;

/// <summary>
/// A console bar for Hub downloads (what huggingface_hub's tqdm bars show): pass it as
/// <see cref="HubDownloadOptions.Progress"/>. One line per file, rewritten in place on standard error —
/// <c>model.safetensors  [#########-----]  61% 152.3/250.1 MB  12.4 MB/s</c> — and ended when the file completes or
/// the next file starts. Reports may come from any thread; they are drawn in order under a lock and at most
/// ten times a second per file.
/// </summary>
public sealed class DownloadProgressBar(TextWriter? writer = null) : IProgress<DownloadProgress>
{
    private readonly TextWriter _out = writer ?? Console.Error;
    private readonly object _gate = new();
    private readonly System.Diagnostics.Stopwatch _clock = new();
    private string? _file;
    private long _startBytes;
    private long? _lastDrawMs;
    private bool _finished;

    /// <summary>Files whose download completed (a known total reached), in order.</summary>
    public List<string> Completed { get; } = [];

    /// <inheritdoc />
    public void Report(DownloadProgress value)
    {
        lock (_gate)
        {
            string key = value.RepoId + "/" + value.FileName;
            if (key != _file)
            {
                EndLine();
                (_file, _startBytes, _finished, _lastDrawMs) = (key, value.BytesDone, false, null);
                _clock.Restart();
            }
            if (_finished) return;
            bool done = value.TotalBytes is long total && value.BytesDone >= total;
            long now = _clock.ElapsedMilliseconds;
            if (!done && now - _lastDrawMs < 100) return;            // null (nothing drawn yet) compares false
            _lastDrawMs = now;
            _out.Write("\r" + Line(value, _clock.Elapsed.TotalSeconds, value.BytesDone - _startBytes));
            if (done)
            {
                _finished = true;
                Completed.Add(value.FileName);
                _out.WriteLine();
            }
        }
    }

    /// <summary>Ends the current line if a file stopped before its known total (e.g. an unknown size); call after the download.</summary>
    public void Finish()
    {
        lock (_gate) EndLine();
    }

    private void EndLine()
    {
        if (_file is not null && !_finished) _out.WriteLine();
        _finished = true;
    }

    /// <summary>One frame: name, bar and percent when the total is known, sizes, speed (of the bytes fetched in this run).</summary>
    internal static string Line(DownloadProgress p, double seconds, long fetched)
    {
        const int width = 24;
        string name = p.FileName.Length > 28 ? "…" + p.FileName[^27..] : p.FileName.PadRight(28);
        string speed = seconds > 0 ? $"{Mb(fetched / seconds)} MB/s" : "";
        if (p.TotalBytes is long total && total > 0)
        {
            double frac = Math.Clamp((double)p.BytesDone / total, 0, 1);
            int filled = (int)(frac * width);
            return string.Create(CultureInfo.InvariantCulture,
                $"{name} [{new string('#', filled)}{new string('-', width - filled)}] {frac * 100,3:F0}% {Mb(p.BytesDone)}/{Mb(total)} MB  {speed}");
        }
        return string.Create(CultureInfo.InvariantCulture, $"{name} {Mb(p.BytesDone)} MB  {speed}");
    }

    private static string Mb(double bytes) => (bytes / 1e6).ToString("F1", CultureInfo.InvariantCulture);
}
