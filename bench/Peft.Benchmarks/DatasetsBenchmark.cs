using System.Collections;
using System.Diagnostics;
using System.Text;
using Peft.Datasets;

namespace Peft.Benchmarks;

/// <summary>
/// Loading + tokenizing a synthetic CSV and JSONL of 1M rows (100k with --quick) with Peft.Datasets: rows/s for
/// <c>LoadDataset</c> and for a batched <c>Map</c> that tokenizes and drops the text column, plus peak RSS and the
/// bytes held by the dataset's column buffers. With <c>PEFT_TOKENIZER</c> set to a Hugging Face tokenizer folder the
/// Map runs the real tokenizer (<c>AutoTokenizer.FromPretrained(dir).EncodeBatch(texts, truncation: true).ToColumns()</c>,
/// the DESIGN.md pipeline); without it a whitespace-split stand-in (hashed vocabulary ids, int32 token lists of the same
/// shape) isolates the dataset machinery from tokenizer speed.
/// Environment overrides for a scale run: <c>PEFT_DATASETS_BENCH_ROWS</c> (e.g. 6800000 for a ~2 GB CSV) and
/// <c>PEFT_DATASETS_BENCH_FORMATS</c> ("csv", "json" or "csv,json"); above 1M rows each step runs once, without warm-up,
/// so that peak RSS reflects one load + one map.
/// </summary>
public sealed class DatasetsBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "datasets";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        int rows = options.Quick ? 100_000 : 1_000_000;
        if (int.TryParse(Environment.GetEnvironmentVariable("PEFT_DATASETS_BENCH_ROWS"), out var envRows) && envRows > 0) rows = envRows;
        var formats = (Environment.GetEnvironmentVariable("PEFT_DATASETS_BENCH_FORMATS") ?? "csv,json").Split(',', StringSplitOptions.TrimEntries);
        int repeats = options.Quick ? 1 : Math.Min(options.Repeats, 3);
        Func<Action, double> time = rows > 1_000_000
            ? a => { var sw = Stopwatch.StartNew(); a(); return sw.Elapsed.TotalSeconds; }
            : a => Timing.MedianSeconds(a, repeats);
        var tokenizerDir = Environment.GetEnvironmentVariable("PEFT_TOKENIZER");
        var tokenizer = string.IsNullOrEmpty(tokenizerDir) ? null : Peft.Transformers.AutoTokenizer.FromPretrained(tokenizerDir);
        Func<IReadOnlyList<string>, IReadOnlyDictionary<string, IList>> tokenize = tokenizer is null
            ? Tokenize
            : texts =>
            {
                using var enc = tokenizer.EncodeBatch(texts, truncation: true);
                return enc.ToColumns();
            };
        var dir = Path.Combine(Path.GetTempPath(), "peft-bench-datasets-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var csv = Path.Combine(dir, "train.csv");
            var jsonl = Path.Combine(dir, "train.jsonl");
            WriteSynthetic(formats.Contains("csv") ? csv : null, formats.Contains("json") ? jsonl : null, rows);
            foreach (var (builder, file) in new[] { ("csv", csv), ("json", jsonl) })
            {
                if (!formats.Contains(builder)) continue;
                Dataset? loaded = null;
                double loadS = time(() =>
                {
                    loaded = null;
                    loaded = DatasetLoader.LoadDataset(builder, new Dictionary<string, string> { ["train"] = file })["train"];
                });
                var ds = loaded!;
                Dataset? tokd = null;
                double mapS = time(() =>
                {
                    tokd = null;
                    tokd = ds.Map(batch => tokenize(batch.Column<string>("text")), batched: true, removeColumns: ["text"]);
                });
                var proc = Process.GetCurrentProcess();
                proc.Refresh();
                long tokens = tokd!.Column<int[]>("attention_mask").Sum(a => (long)a.Length);
                report(new Dictionary<string, object?>
                {
                    ["case"] = $"{builder}-load-map",
                    ["rows"] = rows,
                    ["file_mb"] = Math.Round(new FileInfo(file).Length / 1e6, 1),
                    ["load_s"] = Math.Round(loadS, 3),
                    ["load_rows_per_s"] = Math.Round(rows / loadS),
                    ["map_s"] = Math.Round(mapS, 3),
                    ["map_rows_per_s"] = Math.Round(rows / mapS),
                    ["tokens"] = tokens,
                    ["dataset_mb"] = Math.Round(ds.ByteSize / 1e6, 1),
                    ["tokenized_mb"] = Math.Round(tokd.ByteSize / 1e6, 1),
                    ["managed_mb_after_gc"] = Math.Round(GC.GetTotalMemory(forceFullCollection: true) / 1e6, 1),
                    ["peak_rss_mb"] = Math.Round(proc.PeakWorkingSet64 / 1e6, 1),
                    ["tokenizer"] = tokenizerDir is null or "" ? "whitespace stand-in" : Path.GetFileName(Path.TrimEndingDirectorySeparator(tokenizerDir)),
                });
            }
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private static Dictionary<string, IList> Tokenize(IReadOnlyList<string> texts)
    {
        var ids = new List<int[]>(texts.Count);
        var mask = new List<int[]>(texts.Count);
        foreach (var t in texts)
        {
            var words = t.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var ii = new int[words.Length];
            for (int k = 0; k < words.Length; k++) ii[k] = (int)((uint)StableHash(words[k]) % 50_000);
            ids.Add(ii);
            var m = new int[words.Length];
            Array.Fill(m, 1);
            mask.Add(m);
        }
        return new Dictionary<string, IList> { ["input_ids"] = ids, ["attention_mask"] = mask };
    }

    private static int StableHash(string s)
    {
        unchecked
        {
            int h = (int)2166136261;
            foreach (var c in s) h = (h ^ c) * 16777619;
            return h;
        }
    }

    private static void WriteSynthetic(string? csv, string? jsonl, int rows)
    {
        var rnd = new System.Random(1234);
        var vocab = Enumerable.Range(0, 5000).Select(i => "w" + i.ToString("x", System.Globalization.CultureInfo.InvariantCulture) + new string('a', i % 7)).ToArray();
        using var c = csv is null ? StreamWriter.Null : new StreamWriter(csv, false, new UTF8Encoding(false), 1 << 20);
        using var j = jsonl is null ? StreamWriter.Null : new StreamWriter(jsonl, false, new UTF8Encoding(false), 1 << 20);
        c.Write("text,label\n");
        var sb = new StringBuilder();
        for (int r = 0; r < rows; r++)
        {
            sb.Clear();
            int n = 10 + rnd.Next(50);
            for (int k = 0; k < n; k++)
            {
                if (k > 0) sb.Append(' ');
                sb.Append(vocab[rnd.Next(vocab.Length)]);
                if (k == 3) sb.Append(", said \"x\"");
            }
            int label = rnd.Next(5);
            var text = sb.ToString();
            c.Write('"');
            c.Write(text.Replace("\"", "\"\""));
            c.Write("\",");
            c.Write(label);
            c.Write('\n');
            j.Write("{\"text\": \"");
            j.Write(text.Replace("\"", "\\\""));
            j.Write("\", \"label\": ");
            j.Write(label);
            j.Write("}\n");
        }
    }
}
