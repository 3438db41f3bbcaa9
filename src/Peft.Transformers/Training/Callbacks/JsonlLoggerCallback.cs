using System.Text;
using System.Text.Json;

namespace Peft.Transformers;

/// <summary>
/// Appends each log entry as one JSON line to <c>output_dir/log_history.jsonl</c> (<c>report_to = ["jsonl"]</c>).
/// Each record is one append of the whole line and its newline, flushed to disk, so a killed run keeps every record it
/// logged and at worst a cut last line. Before its first append to a file, the callback repairs such a line (the file
/// is truncated after its last newline; a file without one is emptied), so a resumed run's records never continue a
/// broken line and every line of the file parses.
/// </summary>
public sealed class JsonlLoggerCallback : ITrainerCallback
{
    /// <summary>The file written, <c>log_history.jsonl</c> in the output folder.</summary>
    public const string FileName = "log_history.jsonl";

    private string? _checkedPath;   // the file whose last line was checked by this callback

    /// <inheritdoc />
    public void OnLog(TrainingArguments args, TrainerState state, TrainerControl control, IReadOnlyDictionary<string, double> logs)
    {
        ArgumentNullException.ThrowIfNull(args);
        Directory.CreateDirectory(args.OutputDir);
        string path = Path.Combine(args.OutputDir, FileName);
        if (_checkedPath != path)
        {
            RepairCutLastLine(path);
            _checkedPath = path;
        }
        var line = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(logs, TrainingArguments.JsonOptions).ReplaceLineEndings("") + "\n");
        using var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 1);
        stream.Write(line);   // one write(2) of the whole record (O_APPEND)
        stream.Flush(flushToDisk: true);
    }

    /// <summary>
    /// Truncates <paramref name="path"/> after its last newline when it ends inside a line (a run killed mid-write).
    /// Returns the number of bytes removed (0 for a missing, empty or intact file).
    /// </summary>
    private static long RepairCutLastLine(string path)
    {
        if (!File.Exists(path)) return 0;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        long length = stream.Length;
        if (length == 0) return 0;
        var buffer = new byte[4096];
        long end = length;
        while (end > 0)
        {
            int n = (int)Math.Min(buffer.Length, end);
            stream.Position = end - n;
            stream.ReadExactly(buffer, 0, n);
            int newline = Array.LastIndexOf(buffer, (byte)'\n', n - 1, n);
            if (newline >= 0)
            {
                long keep = end - n + newline + 1;
                if (keep == length) return 0;
                stream.SetLength(keep);
                stream.Flush(flushToDisk: true);
                return length - keep;
            }
            end -= n;
        }
        stream.SetLength(0);
        stream.Flush(flushToDisk: true);
        return length;
    }
}
