using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CsvHelper;
using CsvHelper.Configuration;
using Parquet.Serialization;
using Peft.Datasets.Storage;

namespace Peft.Datasets;

/// <summary>Options of <see cref="DatasetLoader.LoadDataset(string, IReadOnlyDictionary{string, string}, LoadDatasetOptions?)"/> (HF builder config kwargs).</summary>
public sealed record LoadDatasetOptions
{
    /// <summary>CSV field delimiter (HF <c>sep</c> / <c>delimiter</c>); default ",".</summary>
    public string Delimiter { get; init; } = ",";

    /// <summary>JSON: the key of the list of records inside a single JSON object (HF <c>field</c>).</summary>
    public string? Field { get; init; }

    /// <summary>Text: keep the line terminators (HF <c>keep_linebreaks</c>, default false).</summary>
    public bool KeepLinebreaks { get; init; }

    /// <summary>Column types to cast to after loading (e.g. a <see cref="ClassLabel"/> for "label").</summary>
    public Features? Features { get; init; }

    /// <summary>File encoding; default UTF-8 (a BOM is honoured).</summary>
    public Encoding? Encoding { get; init; }

    /// <summary>Receives the number of rows read so far (every 10,000 rows and at the end of each file).</summary>
    public IProgress<long>? Progress { get; init; }

    /// <summary>Checked while reading.</summary>
    public CancellationToken CancellationToken { get; init; }

    /// <summary>
    /// HF <c>data_dir</c>: when set, data_files are relative to this folder and must stay inside it (a data_files entry
    /// with <c>..</c>, an absolute path, or a symlink out of the folder is refused with an <see cref="ArgumentException"/>
    /// before anything is read). Without it, data_files are plain paths chosen by the caller.
    /// </summary>
    public string? DataDir { get; init; }
}

/// <summary>Bad input in a data file: names the file and, when known, the 1-based line and the column.</summary>
public sealed class DatasetLoadException : Exception
{
    /// <summary>Creates the exception; the message is prefixed with "file:line: column 'c':".</summary>
    public DatasetLoadException(string file, long? line, string? column, string message, Exception? inner = null)
        : base($"{file}{(line is null ? "" : $":{line}")}: {(column is null ? "" : $"column '{column}': ")}{message}", inner)
    {
        File = file;
        Line = line;
        Column = column;
    }

    /// <summary>The file.</summary>
    public string File { get; }

    /// <summary>1-based line (or record position for JSON arrays), when known.</summary>
    public long? Line { get; }

    /// <summary>The column, when known.</summary>
    public string? Column { get; }
}

/// <summary>
/// <c>load_dataset</c> for local files: "csv" (CsvHelper, RFC 4180; types inferred per column over the whole file as
/// pandas does: int64, float64 (with missing values), bool, else string; pandas' default NA strings become null),
/// "json" (System.Text.Json; JSON Lines, a JSON array of records, or a list inside an object via
/// <see cref="LoadDatasetOptions.Field"/>), "parquet" (Parquet.Net, row group by row group), "text" (one row per
/// line in a "text" column, empty lines kept, universal newlines). File values may be globs
/// ("data/train-*.csv"). Files stream into compact typed columns without a second full copy.
/// </summary>
public static class DatasetLoader
{
    private static readonly string[] Builders = ["csv", "json", "parquet", "text"];

    /// <summary>Loads one split per entry of <paramref name="dataFiles"/> (split name → file or glob).</summary>
    public static DatasetDict LoadDataset(string builder, IReadOnlyDictionary<string, string> dataFiles, LoadDatasetOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(dataFiles);
        var dict = new DatasetDict();
        foreach (var (split, pattern) in dataFiles) dict[split] = LoadFiles(builder, ExpandPattern(Confine(pattern, options), split, options), options);
        return dict;
    }

    /// <summary>Loads files (a path or glob) into a "train" split (HF <c>data_files="..."</c>).</summary>
    public static DatasetDict LoadDataset(string builder, string dataFiles, LoadDatasetOptions? options = null)
        => LoadDataset(builder, new Dictionary<string, string> { ["train"] = dataFiles }, options);

    /// <summary>Loads several files or globs per split.</summary>
    public static DatasetDict LoadDataset(string builder, IReadOnlyDictionary<string, IReadOnlyList<string>> dataFiles, LoadDatasetOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(dataFiles);
        var dict = new DatasetDict();
        foreach (var (split, patterns) in dataFiles) dict[split] = LoadFiles(builder, patterns.SelectMany(p => ExpandPattern(Confine(p, options), split, options)).ToList(), options);
        return dict;
    }

    /// <summary>
    /// Loads a local folder (HF <c>load_dataset("path/to/folder")</c>): the builder comes from the files' extension
    /// (.csv/.tsv, .json/.jsonl, .parquet, .txt) and splits from file names containing train / test / validation
    /// (also training, testing, eval, valid, val, dev); files without a split name go to "train".
    /// </summary>
    public static DatasetDict LoadDataset(string folder, LoadDatasetOptions? options = null)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Dataset folder '{folder}' does not exist");
        var files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => BuilderOf(f) is not null).OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new FileNotFoundException($"No data files (.csv, .tsv, .json, .jsonl, .parquet, .txt) found in '{folder}'");
        foreach (var f in files) IO.SafePath.EnsureInside(folder, f, $"Dataset folder '{folder}': data file");
        var builder = files.GroupBy(f => BuilderOf(f)!).OrderByDescending(g => g.Count()).First().Key;
        files = files.Where(f => BuilderOf(f) == builder).ToList();
        if (files.All(f => Path.GetExtension(f).Equals(".tsv", StringComparison.OrdinalIgnoreCase)))
            options = (options ?? new LoadDatasetOptions()) with { Delimiter = "\t" };
        var bySplit = files.GroupBy(f => SplitOf(Path.GetRelativePath(folder, f))).ToList();
        var dict = new DatasetDict();
        foreach (var split in new[] { "train", "validation", "test" })
        {
            var g = bySplit.FirstOrDefault(x => x.Key == split);
            if (g is not null) dict[split] = LoadFiles(builder, g.ToList(), options);
        }
        return dict;
    }

    private static string? BuilderOf(string file) => Path.GetExtension(file).ToLowerInvariant() switch
    {
        ".csv" or ".tsv" => "csv",
        ".json" or ".jsonl" => "json",
        ".parquet" => "parquet",
        ".txt" => "text",
        _ => null,
    };

    private static string SplitOf(string relative)
    {
        var words = relative.ToLowerInvariant().Split(['/', '\\', '.', '-', '_', ' '], StringSplitOptions.RemoveEmptyEntries);
        if (words.Any(w => w is "test" or "testing" or "eval" or "evaluation")) return "test";
        if (words.Any(w => w is "validation" or "valid" or "val" or "dev")) return "validation";
        return "train";
    }

    /// <summary>With <see cref="LoadDatasetOptions.DataDir"/>, resolves a data_files entry inside it (refusing escapes).</summary>
    private static string Confine(string pattern, LoadDatasetOptions? options)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        if (options?.DataDir is not { } root) return pattern;
        return IO.SafePath.Resolve(root, pattern, $"data_files entry (data_dir '{root}')");
    }

    private static List<string> ExpandPattern(string pattern, string split, LoadDatasetOptions? options)
    {
        var list = ExpandPattern(pattern, split);
        if (options?.DataDir is { } root)
            foreach (var f in list) IO.SafePath.EnsureInside(root, f, $"data_files entry (data_dir '{root}')");
        return list;
    }

    private static List<string> ExpandPattern(string pattern, string split)
    {
        if (pattern.IndexOfAny(['*', '?']) < 0)
        {
            if (!File.Exists(pattern)) throw new FileNotFoundException($"Data file for split '{split}' not found: '{Path.GetFullPath(pattern)}'", pattern);
            return [pattern];
        }
        var full = Path.GetFullPath(pattern);
        var parts = full.Split(Path.DirectorySeparatorChar);
        int firstWild = Array.FindIndex(parts, p => p.IndexOfAny(['*', '?']) >= 0);
        var root = string.Join(Path.DirectorySeparatorChar, parts.Take(firstWild));
        if (root.Length == 0) root = Path.DirectorySeparatorChar.ToString();
        var rest = string.Join('/', parts.Skip(firstWild));
        var regex = new System.Text.RegularExpressions.Regex("^" + System.Text.RegularExpressions.Regex.Escape(rest)
            .Replace(@"\*\*/", "(.*/)?").Replace(@"\*\*", ".*").Replace(@"\*", "[^/]*").Replace(@"\?", "[^/]") + "$");
        var matches = Directory.Exists(root)
            ? Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
                .Where(f => regex.IsMatch(Path.GetRelativePath(root, f).Replace('\\', '/')))
                .OrderBy(f => f, StringComparer.Ordinal).ToList()
            : [];
        if (matches.Count == 0) throw new FileNotFoundException($"No files match '{pattern}' for split '{split}'", pattern);
        return matches;
    }

    private static Dataset LoadFiles(string builder, IReadOnlyList<string> files, LoadDatasetOptions? options)
    {
        options ??= new LoadDatasetOptions();
        var name = builder.ToLowerInvariant();
        if (name is "jsonl") name = "json";
        if (name is "tsv") { name = "csv"; options = options with { Delimiter = "\t" }; }
        if (!Builders.Contains(name)) throw new ArgumentException($"Unknown dataset builder '{builder}'; expected one of {string.Join(", ", Builders)}", nameof(builder));
        var parts = files.Select(f =>
        {
            if (!File.Exists(f)) throw new FileNotFoundException($"Data file not found: '{Path.GetFullPath(f)}'", f);
            try
            {
                return name switch
                {
                    "csv" => CsvLoader.Load(f, options),
                    "json" => JsonLoader.Load(f, options),
                    "parquet" => ParquetLoader.Load(f),
                    _ => TextLoader.Load(f, options),
                };
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException or InvalidCastException or OverflowException or JsonException or InvalidDataException && e is not ObjectDisposedException)
            {
                // System.Text.Json reports invalid UTF-8 / lone surrogates in strings as InvalidOperationException.
                throw new DatasetLoadException(f, null, null, e.Message, e);
            }
        }).ToList();
        var ds = parts.Count == 1 ? parts[0] : Dataset.Concatenate(parts);
        if (options.Features is { } features) ds = ds.Cast(features);
        return ds;
    }
}

/// <summary>CSV via CsvHelper's RFC 4180 parser; pandas-like per-column type inference.</summary>
internal static class CsvLoader
{
    // pandas.read_csv default na_values (keep_default_na=True).
    private static readonly HashSet<string> NaValues = new(StringComparer.Ordinal)
    {
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
        "NULL", "NaN", "None", "n/a", "nan", "null",
    };

    // HF reads CSV with pandas in chunks of 10,000 rows; the Arrow writer takes its schema from the first chunk and
    // casts later chunks to it. So types are inferred from the first 10,000 data rows, and later rows must cast.
    internal const int InferenceRows = 10_000;

    private sealed class Accumulator(string file, string column)
    {
        public readonly ChunkedColumnBuilder Strings = new(new Value("string"));
        public bool AllInt = true, AllFloat = true, AllBool = true, AnyNull, AnyValue;
        private int _rows;

        public void Add(string cell)
        {
            bool inferring = _rows++ < InferenceRows;
            if (NaValues.Contains(cell))
            {
                Strings.Append(null);
                if (inferring) AnyNull = true;
                return;
            }
            Strings.Append(cell);
            if (!inferring) return;
            AnyValue = true;
            if (AllInt && !long.TryParse(cell, NumberStyles.Integer, CultureInfo.InvariantCulture, out _)) AllInt = false;
            if (AllFloat && !AllInt && !TryFloat(cell, out _)) AllFloat = false;
            if (AllBool && !IsBool(cell, out _)) AllBool = false;
        }

        public List<long> Lines { get; set; } = [];

        private DatasetLoadException CastError(int row, string value, string dtype) => new(file, row < Lines.Count ? Lines[row] : null, column,
            $"data row {row + 1}: value '{value}' cannot be cast to {dtype}, the type inferred from the first {InferenceRows} rows (as HF's CSV reader does)");

        public ChunkedColumn Finish()
        {
            var strings = Strings.Build();
            if (!AnyValue || AllInt || AllFloat)
            {
                bool isInt = AnyValue && AllInt && !AnyNull;
                var b = new ChunkedColumnBuilder(new Value(isInt ? "int64" : "float64"));
                for (int r = 0; r < strings.Length; r++)
                {
                    var s = (string?)strings.GetBoxed(r);
                    if (s is null) { b.Append(null); continue; }
                    if (isInt)
                    {
                        if (long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l)) b.Append(l);
                        else if (TryFloat(s, out var d) && Math.Floor(d) == d && Math.Abs(d) < 9.2e18) b.Append((long)d);
                        else throw CastError(r, s, "int64");
                    }
                    else if (TryFloat(s, out var d)) b.Append(d);
                    else throw CastError(r, s, "float64");
                }
                return b.Build();
            }
            if (AllBool)
            {
                var b = new ChunkedColumnBuilder(new Value("bool"));
                for (int r = 0; r < strings.Length; r++)
                {
                    var s = (string?)strings.GetBoxed(r);
                    if (s is null) b.Append(null);
                    else if (IsBool(s, out var v)) b.Append(v);
                    else throw CastError(r, s, "bool");
                }
                return b.Build();
            }
            return strings;
        }
    }

    private static bool TryFloat(string s, out double d)
    {
        var t = s.Trim();
        switch (t.ToLowerInvariant())
        {
            case "inf" or "+inf" or "infinity" or "+infinity": d = double.PositiveInfinity; return true;
            case "-inf" or "-infinity": d = double.NegativeInfinity; return true;
        }
        return double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out d) && !double.IsNaN(d);
    }

    private static bool IsBool(string s, out bool v)
    {
        switch (s)
        {
            case "True" or "TRUE" or "true": v = true; return true;
            case "False" or "FALSE" or "false": v = false; return true;
            default: v = false; return false;
        }
    }

    public static Dataset Load(string path, LoadDatasetOptions options)
    {
        var config = new CsvConfiguration(CultureInfo.InvariantCulture)
        {
            Delimiter = options.Delimiter,
            HasHeaderRecord = true,
            IgnoreBlankLines = true,
            BadDataFound = null,
            Mode = CsvMode.RFC4180,
            DetectColumnCountChanges = false,
        };
        using var reader = new StreamReader(path, options.Encoding ?? Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        using var parser = new CsvParser(reader, config);
        if (!parser.Read()) throw new DatasetLoadException(path, 1, null, "No columns to parse from file (the CSV file is empty)");
        var header = new string[parser.Count];
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int c = 0; c < header.Length; c++)
        {
            var h = parser[c];
            if (string.IsNullOrEmpty(h)) h = $"Unnamed: {c}";
            if (seen.TryGetValue(h, out var k)) { seen[h] = k + 1; h = $"{h}.{k + 1}"; } else seen[h] = 0;
            header[c] = h;
        }
        var acc = header.Select(h => new Accumulator(path, h)).ToArray();
        var lines = new List<long>();
        foreach (var a in acc) a.Lines = lines;
        while (parser.Read())
        {
            int n = parser.Count;
            // pandas (skip_blank_lines=True) also skips lines of spaces / tabs only
            if (n == 1 && header.Length > 1 && parser[0].Length > 0 && parser[0].AsSpan().IndexOfAnyExcept(' ', '\t') < 0
                && parser.RawRecord.AsSpan().TrimEnd("\r\n").IndexOfAnyExcept(' ', '\t') < 0) continue;
            if (n != header.Length)
            {
                string? column = n > header.Length ? null : header[n];
                throw new DatasetLoadException(path, parser.RawRow, column,
                    $"expected {header.Length} fields ({string.Join(", ", header)}) but found {n}{(n < header.Length ? $"; missing from column '{header[n]}' on" : "")}");
            }
            lines.Add(parser.RawRow);
            for (int c = 0; c < n; c++) acc[c].Add(parser[c]);
            if (lines.Count % 10_000 == 0)
            {
                options.CancellationToken.ThrowIfCancellationRequested();
                options.Progress?.Report(lines.Count);
            }
        }
        options.Progress?.Report(lines.Count);
        var cols = new List<Dataset.NamedColumn>();
        for (int c = 0; c < header.Length; c++) cols.Add(new Dataset.NamedColumn(header[c], acc[c].Finish()));
        return new Dataset(cols, null, cols.Count == 0 ? 0 : cols[0].Column.Length);
    }
}

/// <summary>
/// Accumulates boxed values (JSON / Parquet records) per column into typed columns: values wait in a small pending
/// block, whose type is inferred and unified with the column's so far (int64 + float64 → float64, as pyarrow does),
/// then stream into one builder per column; a type change seals the builder and the sealed parts are cast at the end.
/// </summary>
internal sealed class RecordAccumulator(string file)
{
    private const int BlockRows = 1 << 13;
    private readonly List<string> _order = [];
    private readonly Dictionary<string, List<object?>> _pending = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<ChunkedColumn>> _parts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ChunkedColumnBuilder?> _builders = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _columnRows = new(StringComparer.Ordinal);
    private int _rows;
    private int _pendingRows;
    private long _firstPendingLine = 1;
    private long _lastLine;

    /// <summary>Fixes the column order up front (Parquet: the schema's order, even when the first rows lack values).</summary>
    public void Declare(IEnumerable<string> columns)
    {
        foreach (var k in columns)
        {
            if (_pending.ContainsKey(k)) continue;
            _pending[k] = new List<object?>(BlockRows);
            _order.Add(k);
            _parts[k] = [];
            _builders[k] = null;
            _columnRows[k] = 0;
        }
    }

    public void Add(IEnumerable<KeyValuePair<string, object?>> record, long line)
    {
        if (_pendingRows == 0) _firstPendingLine = line;
        _lastLine = line;
        foreach (var (k, v) in record)
        {
            if (!_pending.TryGetValue(k, out var list))
            {
                list = new List<object?>(BlockRows);
                for (int i = 0; i < _pendingRows; i++) list.Add(null);
                _pending[k] = list;
                _order.Add(k);
                _parts[k] = [];
                _builders[k] = null;
                _columnRows[k] = 0;
            }
            if (list.Count > _pendingRows) throw new DatasetLoadException(file, line, k, "duplicate key in a record");
            list.Add(v);
        }
        _pendingRows++;
        foreach (var l in _pending.Values) if (l.Count < _pendingRows) l.Add(null);
        if (_pendingRows >= BlockRows) Flush();
    }

    private void Flush()
    {
        if (_pendingRows == 0) return;
        foreach (var k in _order)
        {
            var pending = _pending[k];
            try
            {
                if (_columnRows[k] < _rows)
                {
                    // column first seen in this block: the earlier rows are null
                    _parts[k].Add(TypeInference.BuildColumn(new object?[_rows - _columnRows[k]], k, new ObjectFeature()));
                    _columnRows[k] = _rows;
                }
                var blockType = TypeInference.FromList(pending, k);
                var cur = _builders[k];
                var target = cur is null ? blockType : TypeInference.Unify(cur.Feature is ObjectFeature ? new Value("null") : cur.Feature, blockType, k);
                if (target is Value { Dtype: "null" }) target = new ObjectFeature();
                if (cur is null || target != cur.Feature)
                {
                    if (cur is not null) _parts[k].Add(cur.Build());
                    cur = new ChunkedColumnBuilder(target);
                    _builders[k] = cur;
                }
                cur.AppendList(pending, k);
            }
            catch (InvalidCastException e)
            {
                throw new DatasetLoadException(file, null, k, $"in lines {_firstPendingLine}..{_lastLine}: {e.Message}", e);
            }
            _columnRows[k] += _pendingRows;
            pending.Clear();
        }
        _rows += _pendingRows;
        _pendingRows = 0;
    }

    public Dataset Build()
    {
        Flush();
        var cols = new List<Dataset.NamedColumn>();
        foreach (var k in _order)
        {
            var parts = _parts[k];
            if (_builders[k] is { } b) parts.Add(b.Build());
            FeatureType? f = null;
            try
            {
                foreach (var p in parts) f = TypeInference.Unify(f, p.Feature is ObjectFeature && IsAllNull(p) ? new Value("null") : p.Feature, k);
            }
            catch (InvalidCastException e)
            {
                throw new DatasetLoadException(file, null, k, e.Message, e);
            }
            if (f is null or Value { Dtype: "null" }) f = new ObjectFeature();
            var unified = parts.Select(p => p.Feature == f ? p : Recast(p, f)).ToList();
            cols.Add(new Dataset.NamedColumn(k, ChunkedColumn.Concat(f, unified)));
        }
        return new Dataset(cols, null, _rows);
    }

    private static bool IsAllNull(ChunkedColumn c)
    {
        for (int r = 0; r < c.Length; r++) if (!c.IsNull(r)) return false;
        return true;
    }

    private static ChunkedColumn Recast(ChunkedColumn c, FeatureType f)
    {
        var b = new ChunkedColumnBuilder(f);
        for (int r = 0; r < c.Length; r++) b.Append(c.GetBoxed(r));
        return b.Build();
    }
}

/// <summary>JSON Lines / JSON array / <c>field</c> via System.Text.Json.</summary>
internal static class JsonLoader
{
    public static Dataset Load(string path, LoadDatasetOptions options)
    {
        if (options.Field is null && !StartsWithBracket(path, options)) return LoadLines(path, options);
        using var stream = File.OpenRead(path);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(stream, new JsonDocumentOptions { AllowTrailingCommas = false });
        }
        catch (JsonException e)
        {
            throw new DatasetLoadException(path, (e.LineNumber ?? 0) + 1, null, $"invalid JSON at byte {e.BytePositionInLine} of the line: {e.Message}", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (options.Field is { } field)
            {
                if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty(field, out root))
                    throw new DatasetLoadException(path, null, field, $"field '{field}' not found in the top-level JSON object");
            }
            var acc = new RecordAccumulator(path);
            if (root.ValueKind == JsonValueKind.Array)
            {
                long i = 0;
                foreach (var rec in root.EnumerateArray())
                {
                    i++;
                    if (rec.ValueKind != JsonValueKind.Object) throw new DatasetLoadException(path, null, null, $"record {i} of the JSON array is a {rec.ValueKind}, expected an object");
                    acc.Add(rec.EnumerateObject().Select(p => new KeyValuePair<string, object?>(p.Name, Convert(p.Value))), i);
                }
                return acc.Build();
            }
            if (root.ValueKind == JsonValueKind.Object)
            {
                // dict of lists (columns)
                var cols = root.EnumerateObject().ToList();
                if (cols.Count > 0 && cols.All(c => c.Value.ValueKind == JsonValueKind.Array))
                {
                    var dict = new Dictionary<string, IList>(StringComparer.Ordinal);
                    foreach (var c in cols) dict[c.Name] = c.Value.EnumerateArray().Select(Convert).ToList();
                    try { return Dataset.FromDict(dict); }
                    catch (ArgumentException e) { throw new DatasetLoadException(path, null, null, e.Message, e); }
                }
                acc.Add(cols.Select(p => new KeyValuePair<string, object?>(p.Name, Convert(p.Value))), 1);
                return acc.Build();
            }
            throw new DatasetLoadException(path, null, null, $"expected JSON records (an array or JSON Lines), found a {root.ValueKind}");
        }
    }

    private static bool StartsWithBracket(string path, LoadDatasetOptions options)
    {
        using var r = new StreamReader(path, options.Encoding ?? Encoding.UTF8, true);
        int c;
        while ((c = r.Read()) >= 0)
        {
            if (!char.IsWhiteSpace((char)c)) return c == '[';
        }
        return false;
    }

    private static Dataset LoadLines(string path, LoadDatasetOptions options)
    {
        var acc = new RecordAccumulator(path);
        using var reader = new StreamReader(path, options.Encoding ?? Encoding.UTF8, true, 1 << 16);
        long lineNo = 0;
        string? line;
        var record = new List<KeyValuePair<string, object?>>();
        while ((line = reader.ReadLine()) is not null)
        {
            lineNo++;
            if (lineNo % 10_000 == 0)
            {
                options.CancellationToken.ThrowIfCancellationRequested();
                options.Progress?.Report(lineNo);
            }
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                throw new DatasetLoadException(path, lineNo, null, $"invalid JSON at character {(e.BytePositionInLine ?? 0) + 1}: {e.Message}", e);
            }
            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new DatasetLoadException(path, lineNo, null, $"a JSON Lines record must be an object, found a {doc.RootElement.ValueKind}");
                record.Clear();
                foreach (var p in doc.RootElement.EnumerateObject()) record.Add(new KeyValuePair<string, object?>(p.Name, Convert(p.Value)));
                acc.Add(record, lineNo);
            }
        }
        options.Progress?.Report(lineNo);
        return acc.Build();
    }

    internal static object? Convert(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out var l) ? (object)l : e.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.Array => e.EnumerateArray().Select(Convert).ToList(),
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => Convert(p.Value)),
        _ => null,
    };
}

/// <summary>Parquet via Parquet.Net's untyped deserializer, one row group at a time.</summary>
internal static class ParquetLoader
{
    public static Dataset Load(string path)
    {
        var acc = new RecordAccumulator(path);
        using var file = File.OpenRead(path);
        // Parquet.Net's page loop trusts the footer's offsets, counts and page sizes: a corrupt page size can send it
        // back to the same page forever. Every turn of such a loop reads the stream, so a read budget per pass (the
        // footer plus one row group reads far less than this) makes it end with an error naming the file.
        long budget = 8 * file.Length + (1 << 20);
        using var stream = new ReadBudgetStream(file, path, budget);
        // Row counts come from the footer: bound them by the file's real size before anything is allocated for them
        // (a forged count would make the deserializer allocate or loop for billions of rows). Dictionary / RLE
        // encodings can pack many rows per byte, hence the generous factor.
        long maxRows = Math.Max(1L << 16, file.Length * 64);
        try
        {
            ParquetGuard.Check(file, maxRows);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
        {
            throw new DatasetLoadException(path, null, null, e.Message, e);
        }
        int groups;
        Features? hfFeatures = null;
        try
        {
            var reader = Parquet.ParquetReader.CreateAsync(stream, leaveStreamOpen: true).GetAwaiter().GetResult();
            groups = reader.RowGroupCount;
            long total = 0;
            for (int g = 0; g < groups; g++)
            {
                long n = reader.RowGroups[g].RowCount;
                if (n < 0 || (total += n) > maxRows)
                    throw new DatasetLoadException(path, null, null, $"row group {g} claims {n} rows, more than a {stream.Length}-byte file can hold (limit {maxRows}); the footer is corrupt");
            }
            acc.Declare(reader.Schema.Fields.Select(f => f.Name));
            if (reader.CustomMetadata.TryGetValue("huggingface", out var hf)) hfFeatures = ReadHfFeatures(hf);
            reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not OutOfMemoryException and not DatasetLoadException)
        {
            throw new DatasetLoadException(path, null, null, $"not a readable Parquet file: {e.Message}", e);
        }
        long row = 0;
        for (int g = 0; g < groups; g++)
        {
            stream.Reset();
            stream.Position = 0;
            var result = ReadRowGroup(stream, g, path);
            foreach (var rec in result)
            {
                row++;
                acc.Add(rec.Select(kv => new KeyValuePair<string, object?>(kv.Key, Normalize(kv.Value))), row);
            }
        }
        var ds = acc.Build();
        // Features written by HF datasets (or Dataset.ToParquet) restore ClassLabel names and exact dtypes.
        if (hfFeatures is not null)
        {
            foreach (var (k, f) in hfFeatures)
            {
                if (ds.Features.ContainsKey(k) && ds.Features[k] != f && f is not Sequence { Feature: Sequence }) ds = ds.CastColumn(k, f);
            }
        }
        return ds;
    }

    private static IList<Dictionary<string, object>> ReadRowGroup(ReadBudgetStream stream, int g, string path)
    {
        try
        {
            return ParquetSerializer.DeserializeUntypedAsync(stream, null, g).GetAwaiter().GetResult().Data;
        }
        catch (Exception e) when (e is not OutOfMemoryException and not DatasetLoadException)
        {
            // Parquet.Net reports corrupt pages with many exception types (its own, IndexOutOfRange, ...).
            throw new DatasetLoadException(path, null, null, $"row group {g} is not readable: {e.GetType().Name}: {e.Message}", e);
        }
    }

    private static Features? ReadHfFeatures(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return doc.RootElement.TryGetProperty("info", out var info) && info.TryGetProperty("features", out var f) ? FeaturesJson.FromJson(f) : null;
        }
        catch (Exception e) when (e is JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
        {
            return null;   // unknown metadata layouts are ignored; the Parquet schema still gives the types
        }
    }

    private static object? Normalize(object? v) => v switch
    {
        null => null,
        string or bool or int or long or float or double => v,
        DateTime or DateTimeOffset or decimal => v,
        byte[] b => b,
        IDictionary d => d,
        IEnumerable e => e.Cast<object?>().Select(Normalize).ToList(),
        _ => v,
    };
}

/// <summary>Text: one row per line in a "text" column; lines end at "\n", "\r\n" or "\r" (Python universal newlines, as HF reads them), empty lines kept.</summary>
internal static class TextLoader
{
    public static Dataset Load(string path, LoadDatasetOptions options)
    {
        var b = new ChunkedColumnBuilder(new Value("string"));
        using var reader = new StreamReader(path, options.Encoding ?? Encoding.UTF8, true, 1 << 16);
        var line = new StringBuilder();
        var buf = new char[1 << 16];
        int n;
        bool pendingCr = false;
        while ((n = reader.Read(buf, 0, buf.Length)) > 0)
        {
            options.CancellationToken.ThrowIfCancellationRequested();
            for (int i = 0; i < n; i++)
            {
                char c = buf[i];
                if (pendingCr)
                {
                    pendingCr = false;
                    if (c == '\n') continue; // \r\n is one terminator
                }
                switch (c)
                {
                    case '\r':
                        if (options.KeepLinebreaks) line.Append('\n');
                        b.Append(line.ToString());
                        line.Clear();
                        pendingCr = true;
                        break;
                    case '\n':
                        if (options.KeepLinebreaks) line.Append(c);
                        b.Append(line.ToString());
                        line.Clear();
                        break;
                    default:
                        line.Append(c);
                        break;
                }
            }
        }
        if (line.Length > 0) b.Append(line.ToString());
        var col = b.Build();
        return new Dataset([new Dataset.NamedColumn("text", col)], null, col.Length);
    }
}
