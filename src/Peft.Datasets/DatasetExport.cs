using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsvHelper;
using CsvHelper.Configuration;
using Parquet.Schema;
using Parquet.Serialization;

namespace Peft.Datasets;

public sealed partial class Dataset
{
    /// <summary>
    /// Writes JSON Lines, one object per row (HF <c>to_json</c>: orient="records", lines=True); lists as arrays,
    /// ClassLabel as ids, missing values as null. Written to a temp file, then renamed.
    /// </summary>
    public void ToJson(string path)
    {
        WriteAtomically(path, stream =>
        {
            var options = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
            var newline = "\n"u8.ToArray();
            for (int i = 0; i < NumRows; i++)
            {
                using (var w = new Utf8JsonWriter(stream, options))
                {
                    w.WriteStartObject();
                    var row = this[i];
                    foreach (var n in ColumnNames)
                    {
                        w.WritePropertyName(n);
                        WriteJsonValue(w, row[n]);
                    }
                    w.WriteEndObject();
                }
                stream.Write(newline);
            }
        });
    }

    private static void WriteJsonValue(Utf8JsonWriter w, object? v)
    {
        switch (v)
        {
            case null: w.WriteNullValue(); break;
            case string s: w.WriteStringValue(s); break;
            case bool b: w.WriteBooleanValue(b); break;
            case int i: w.WriteNumberValue(i); break;
            case long l: w.WriteNumberValue(l); break;
            case float f: w.WriteNumberValue(f); break;
            case double d: w.WriteNumberValue(d); break;
            case Array a:
                w.WriteStartArray();
                foreach (var x in a) WriteJsonValue(w, x);
                w.WriteEndArray();
                break;
            default: JsonSerializer.Serialize(w, v, v.GetType()); break;
        }
    }

    /// <summary>
    /// Writes CSV with a header (HF <c>to_csv</c>, pandas without index): RFC 4180 quoting by CsvHelper, bools as
    /// True/False, lists in Python list syntax, missing values empty. Written to a temp file, then renamed.
    /// </summary>
    public void ToCsv(string path, string delimiter = ",")
    {
        WriteAtomically(path, stream =>
        {
            using var sw = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16, leaveOpen: true) { NewLine = "\n" };
            using var csv = new CsvWriter(sw, new CsvConfiguration(CultureInfo.InvariantCulture) { Delimiter = delimiter, NewLine = "\n" });
            foreach (var n in ColumnNames) csv.WriteField(n);
            csv.NextRecord();
            for (int i = 0; i < NumRows; i++)
            {
                var row = this[i];
                foreach (var n in ColumnNames)
                {
                    var v = row[n];
                    csv.WriteField(v switch { null => "", string s => s, Array => Formatting.Repr(v), _ => Formatting.Str(v) });
                }
                csv.NextRecord();
            }
        });
    }

    /// <summary>
    /// Writes Parquet with Parquet.Net (HF <c>to_parquet</c>): scalar columns and lists of scalars, nullable, plus the
    /// features as HF JSON under the "huggingface" metadata key, so ClassLabel names survive a round trip through
    /// <see cref="DatasetLoader"/> and Python's <c>datasets</c>. Lists of lists are not supported. Temp file + rename.
    /// </summary>
    public void ToParquet(string path)
    {
        var fields = new List<Field>();
        foreach (var (name, f) in Features)
        {
            fields.Add(f switch
            {
                Sequence { Feature: Value or ClassLabel } s => new ListField(name, new DataField("element", ScalarClr(s.Feature, name), isNullable: ScalarClr(s.Feature, name) == typeof(string))),
                Value or ClassLabel => new DataField(name, ScalarClr(f, name), isNullable: true),
                _ => throw new NotSupportedException($"Column '{name}' ({f}) cannot be written to Parquet; only scalars and lists of scalars can"),
            });
        }
        var schema = new ParquetSchema(fields);
        var rows = new List<IDictionary<string, object?>>(NumRows);
        for (int i = 0; i < NumRows; i++)
        {
            var row = this[i];
            var d = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var n in ColumnNames) d[n] = row[n];
            rows.Add(d);
        }
        var hf = new JsonObject { ["info"] = new JsonObject { ["features"] = FeaturesJson.ToJson(Features) } };
        var meta = new Dictionary<string, string> { ["huggingface"] = hf.ToJsonString() };
        WriteAtomically(path, stream => ParquetSerializer.SerializeUntypedAsync(rows, schema, stream, null, meta).GetAwaiter().GetResult());
    }

    private static Type ScalarClr(FeatureType f, string column) => f switch
    {
        ClassLabel => typeof(long),
        Value { Dtype: "string" } => typeof(string),
        Value { Dtype: "null" } => throw new NotSupportedException($"Column '{column}' holds only nulls; cast it to a type before writing Parquet"),
        Value v => v.ClrType,
        _ => throw new NotSupportedException($"Column '{column}' ({f}) cannot be written to Parquet"),
    };

    private static void WriteAtomically(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(fs);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }
}
