using System.Collections;
using System.Text;
using Parquet.Serialization;
using Peft.Datasets;
using Peft.Datasets.Random;
using Peft.Testing;

namespace Peft.Datasets.Tests.Loading;

public class DatasetLoaderTests
{
    private static readonly string[] Topics = ["computers", "politics", "science", "work", "art"];

    [Fact]
    public void CsvQuotingUnicodeEmptyLinesAndTypes()
    {
        using var tmp = new TempDir();
        var path = tmp.File("train.csv");
        File.WriteAllText(path,
            "text,label,score,flag\n" +
            "\"Hello, world\",1,0.5,True\n" +
            "\n" +
            "\"She said \"\"hi\"\"\",2,1,false\n" +
            "   \t \n" +
            "\"line one\nline two\",3,,True\n" +
            "Ünïcödé 漢字 🙂,4,2.25,False\n", new UTF8Encoding(false));
        var ds = DatasetLoader.LoadDataset("csv", new Dictionary<string, string> { ["train"] = path })["train"];
        Assert.Equal(4, ds.NumRows);
        Assert.Equal(["text", "label", "score", "flag"], ds.ColumnNames);
        Assert.Equal(new Value("string"), ds.Features["text"]);
        Assert.Equal(new Value("int64"), ds.Features["label"]);
        Assert.Equal(new Value("float64"), ds.Features["score"]);   // a missing value
        Assert.Equal(new Value("bool"), ds.Features["flag"]);
        Assert.Equal(["Hello, world", "She said \"hi\"", "line one\nline two", "Ünïcödé 漢字 🙂"], ds.Column<string>("text"));
        Assert.Equal([1L, 2, 3, 4], ds.Column<long>("label"));
        Assert.Null(ds[2]["score"]);
        Assert.Equal(1.0, ds[1]["score"]);
        Assert.Equal(false, ds[1]["flag"]);
    }

    [Fact]
    public void CsvWithBomAndCrLf()
    {
        using var tmp = new TempDir();
        var path = tmp.File("bom.csv");
        File.WriteAllText(path, "text,label\r\n\"a\r\nb\",1\r\nc,2\r\n", new UTF8Encoding(true));
        var ds = DatasetLoader.LoadDataset("csv", path)["train"];
        Assert.Equal(["text", "label"], ds.ColumnNames);
        Assert.Equal(["a\r\nb", "c"], ds.Column<string>("text"));
        Assert.Equal([1L, 2], ds.Column<long>("label"));
    }

    [Fact]
    public void CsvDelimiterAndNullStrings()
    {
        using var tmp = new TempDir();
        var path = tmp.File("data.tsv");
        File.WriteAllText(path, "a\tb\n1\tNA\n2\tx;y\n");
        var ds = DatasetLoader.LoadDataset("csv", path, new LoadDatasetOptions { Delimiter = "\t" })["train"];
        Assert.Equal(new Value("int64"), ds.Features["a"]);
        Assert.Equal(new Value("string"), ds.Features["b"]);
        Assert.Null(ds[0]["b"]);
        Assert.Equal("x;y", ds[1]["b"]);
    }

    [Fact]
    public void BadInputNamesFileLineAndColumn()
    {
        using var tmp = new TempDir();
        var csv = tmp.File("ragged.csv");
        File.WriteAllText(csv, "text,label\nok,1\ntoo,many,fields\n");
        var e1 = Assert.Throws<DatasetLoadException>(() => DatasetLoader.LoadDataset("csv", csv));
        Assert.Contains("ragged.csv:3", e1.Message);
        Assert.Equal(3, e1.Line);
        var csv2 = tmp.File("short.csv");
        File.WriteAllText(csv2, "text,label\nok,1\nonly\n");
        var e2 = Assert.Throws<DatasetLoadException>(() => DatasetLoader.LoadDataset("csv", csv2));
        Assert.Equal("label", e2.Column);
        Assert.Contains("short.csv:3", e2.Message);

        var jsonl = tmp.File("bad.jsonl");
        File.WriteAllText(jsonl, "{\"a\": 1}\n{\"a\": 2}\n{\"a\": 3,,}\n");
        var e3 = Assert.Throws<DatasetLoadException>(() => DatasetLoader.LoadDataset("json", jsonl));
        Assert.Contains("bad.jsonl:3", e3.Message);
        Assert.Equal(3, e3.Line);

        var e4 = Assert.Throws<FileNotFoundException>(() => DatasetLoader.LoadDataset("csv", new Dictionary<string, string> { ["test"] = tmp.File("missing.csv") }));
        Assert.Contains("missing.csv", e4.Message);
        Assert.Contains("'test'", e4.Message);

        var mixed = tmp.File("mixed.jsonl");
        File.WriteAllText(mixed, "{\"a\": 1}\n{\"a\": \"x\"}\n");
        var e5 = Assert.Throws<DatasetLoadException>(() => DatasetLoader.LoadDataset("json", mixed));
        Assert.Equal("a", e5.Column);
        Assert.Contains("mixed.jsonl", e5.Message);
    }

    [Fact]
    public void JsonLinesArrayAndField()
    {
        using var tmp = new TempDir();
        var lines = tmp.File("a.jsonl");
        File.WriteAllText(lines, "{\"q\": \"x\", \"n\": 1, \"tags\": [\"a\", \"b\"]}\n\n{\"q\": \"y\", \"n\": 2.5, \"extra\": true}\n");
        var ds = DatasetLoader.LoadDataset("json", lines)["train"];
        Assert.Equal(["q", "n", "tags", "extra"], ds.ColumnNames);
        Assert.Equal(new Value("float64"), ds.Features["n"]);
        Assert.Equal(new Sequence(new Value("string")), ds.Features["tags"]);
        Assert.Equal(["a", "b"], ds.Column<string[]>("tags")[0]);
        Assert.Null(ds[1]["tags"]);
        Assert.Null(ds[0]["extra"]);

        var arr = tmp.File("b.json");
        File.WriteAllText(arr, "[{\"q\": \"x\", \"n\": 1}, {\"q\": \"z\", \"n\": 3}]");
        var ds2 = DatasetLoader.LoadDataset("json", arr)["train"];
        Assert.Equal(new Value("int64"), ds2.Features["n"]);
        Assert.Equal([1L, 3], ds2.Column<long>("n"));

        var nested = tmp.File("c.json");
        File.WriteAllText(nested, "{\"version\": \"1\", \"data\": [{\"q\": \"u\"}, {\"q\": \"v\"}, {\"q\": \"w\"}]}");
        var ds3 = DatasetLoader.LoadDataset("json", nested, new LoadDatasetOptions { Field = "data" })["train"];
        Assert.Equal(["u", "v", "w"], ds3.Column<string>("q"));
    }

    [Fact]
    public void JsonLinesTypesUnifyAcrossBlocks()
    {
        using var tmp = new TempDir();
        var sb = new StringBuilder();
        for (int i = 0; i < 20_000; i++)
        {
            sb.Append("{\"n\": ").Append(i < 15_000 ? i.ToString() : (i + 0.5).ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (i >= 12_000) sb.Append(", \"late\": \"v").Append(i).Append('"');
            sb.Append(", \"none\": null}\n");
        }
        File.WriteAllText(tmp.File("big.jsonl"), sb.ToString());
        var ds = DatasetLoader.LoadDataset("json", tmp.File("big.jsonl"))["train"];
        Assert.Equal(20_000, ds.NumRows);
        Assert.Equal(new Value("float64"), ds.Features["n"]);     // int64 then float64 → float64, as pyarrow
        Assert.Equal(14_999.0, ds[14_999]["n"]);
        Assert.Equal(15_000.5, ds[15_000]["n"]);
        Assert.Equal(new Value("string"), ds.Features["late"]);
        Assert.Null(ds[11_999]["late"]);
        Assert.Equal("v12000", ds[12_000]["late"]);
        Assert.All(ds.Column<object?>("none").Take(100), Assert.Null);
    }

    [Fact]
    public void TextKeepsEmptyLines()
    {
        using var tmp = new TempDir();
        var path = tmp.File("t.txt");
        File.WriteAllText(path, "first\n\nthird\r\nfourth\rfifth \f sixth\n\n");
        var ds = DatasetLoader.LoadDataset("text", path)["train"];
        // universal newlines (\n, \r\n, \r) end lines; other characters stay in the line, as HF's text builder
        Assert.Equal(["first", "", "third", "fourth", "fifth \f sixth", ""], ds.Column<string>("text"));
        var kept = DatasetLoader.LoadDataset("text", path, new LoadDatasetOptions { KeepLinebreaks = true })["train"];
        Assert.Equal(["first\n", "\n", "third\n", "fourth\n", "fifth \f sixth\n", "\n"], kept.Column<string>("text"));
    }

    [Fact]
    public void CsvTypesComeFromTheFirst10000RowsLikeHf()
    {
        using var tmp = new TempDir();
        var sb = new StringBuilder("id,value\n");
        for (int i = 0; i < 10_000; i++) sb.Append(i).Append(',').Append(i % 7).Append('\n');
        sb.Append("10000,\n");          // missing after the first pandas chunk: HF keeps int64 (with a null)
        File.WriteAllText(tmp.File("late-null.csv"), sb.ToString());
        var ds = DatasetLoader.LoadDataset("csv", tmp.File("late-null.csv"))["train"];
        Assert.Equal(new Value("int64"), ds.Features["value"]);
        Assert.Null(ds[10_000]["value"]);
        Assert.Equal(3L, ds[10]["value"]);

        sb.Append("10001,abc\n");       // a later value that cannot be cast to the inferred type
        File.WriteAllText(tmp.File("late-str.csv"), sb.ToString());
        var e = Assert.Throws<DatasetLoadException>(() => DatasetLoader.LoadDataset("csv", tmp.File("late-str.csv")));
        Assert.Equal("value", e.Column);
        Assert.Equal(10_003, e.Line);
        Assert.Contains("'abc'", e.Message);

        File.WriteAllText(tmp.File("early-null.csv"), "a\n1\n\"\"\n3\n");   // missing in the first chunk → float64
        var f = DatasetLoader.LoadDataset("csv", tmp.File("early-null.csv"))["train"];
        Assert.Equal(new Value("float64"), f.Features["a"]);
        Assert.Equal([1.0, null, 3.0], f.Column<double?>("a"));
    }

    public sealed class Rec
    {
        public string Text { get; set; } = "";
        public int Label { get; set; }
        public double Score { get; set; }
        public List<int> Ids { get; set; } = [];
    }

    [Fact]
    public async Task ParquetRoundTripAndGlob()
    {
        using var tmp = new TempDir();
        var recs = Enumerable.Range(0, 50).Select(i => new Rec { Text = $"row {i}", Label = i % 3, Score = i / 2.0, Ids = Enumerable.Range(0, i % 4).ToList() }).ToList();
        await ParquetSerializer.SerializeAsync(recs.Take(30), tmp.File("part-0.parquet"));
        await ParquetSerializer.SerializeAsync(recs.Skip(30), tmp.File("part-1.parquet"));
        var ds = DatasetLoader.LoadDataset("parquet", Path.Combine(tmp.Path, "part-*.parquet"))["train"];
        Assert.Equal(50, ds.NumRows);
        Assert.Equal(new Value("int32"), ds.Features["Label"]);
        Assert.Equal(new Value("float64"), ds.Features["Score"]);
        Assert.Equal(recs.Select(r => r.Text), ds.Column<string>("Text"));
        Assert.Equal(recs.Select(r => r.Label), ds.Column<int>("Label"));
        Assert.Equal(recs[7].Ids, ds.Column<int[]>("Ids")[7]);
        Assert.Empty(ds.Column<int[]>("Ids")[4]);
    }

    [Fact]
    public void FolderWithSplitNames()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("train.csv"), "a\n1\n2\n");
        File.WriteAllText(tmp.File("test.csv"), "a\n3\n");
        var dd = DatasetLoader.LoadDataset(tmp.Path);
        Assert.Equal(["train", "test"], dd.Keys);
        Assert.Equal(2, dd["train"].NumRows);
        Assert.Equal(1, dd["test"].NumRows);
        Assert.Contains("DatasetDict({", dd.ToString());
    }

    private static DatasetDict LoadTopics() => DatasetLoader.LoadDataset("csv", new Dictionary<string, string>
    {
        ["train"] = Fixtures.Data("topics_train.csv"),
        ["test"] = Fixtures.Data("topics_test.csv"),
    });

    [Fact]
    public void TopicsSizesTypesAndClassLabelRoundTrip()
    {
        var dd = LoadTopics();
        Assert.Equal(2333, dd["train"].NumRows);
        Assert.Equal(584, dd["test"].NumRows);
        Assert.Equal(["text", "label"], dd["train"].ColumnNames);
        Assert.Equal(new Value("string"), dd["train"].Features["text"]);
        Assert.Equal(new Value("int64"), dd["train"].Features["label"]);
        Assert.Equal("If an experiment works, something has gone wrong.", dd["train"][0]["text"]);
        Assert.Equal(2L, dd["train"][0]["label"]);

        var labels = new ClassLabel(Topics);
        var cast = dd.CastColumn("label", labels);
        var train = cast["train"];
        Assert.Equal(labels, train.Features["label"]);
        var ids = dd["train"].Column<long>("label");
        var names = train.Column<long>("label").Select(labels.Int2Str).ToList();
        Assert.Equal(ids, names.Select(n => (long)labels.Str2Int(n)));
        Assert.All(ids, id => Assert.InRange(id, 0, 4));
        // names → ids through a string column, the other direction
        var asNames = Dataset.FromDict(new Dictionary<string, IList> { ["label"] = names }).CastColumn("label", labels);
        Assert.Equal(ids, asNames.Column<long>("label"));
        // features given at load time
        var withFeatures = DatasetLoader.LoadDataset("csv", Fixtures.Data("topics_test.csv"),
            new LoadDatasetOptions { Features = new Features([new("label", labels)]) })["train"];
        Assert.Equal(labels, withFeatures.Features["label"]);
        Assert.Contains("science", withFeatures.ShowRandomElements(3, seed: 1) + withFeatures.ToPrettyString(50));
    }

    [Fact]
    public void TopicsShuffleSelectSplitAndTokenize()
    {
        var train = LoadTopics()["train"];
        var a = train.Shuffle(seed: 42);
        var b = train.Shuffle(seed: 42);
        Assert.Equal(a.Column<string>("text"), b.Column<string>("text"));
        Assert.NotEqual(a.Column<string>("text").Take(20), train.Shuffle(seed: 43).Column<string>("text").Take(20));
        // permutation property: same multiset of rows
        Assert.Equal(train.Column<string>("text").Order(StringComparer.Ordinal), a.Column<string>("text").Order(StringComparer.Ordinal));
        var perm = new NumpyGenerator(42).Permutation(2333);
        Assert.Equal(perm.Take(100).Select(i => train.Column<string>("text")[i]), a.Column<string>("text").Take(100));

        var small = a.Select(Enumerable.Range(0, 1000));
        Assert.Equal(1000, small.NumRows);

        var split = train.TrainTestSplit(testSize: 0.2, seed: 42);
        Assert.Equal(467, split["test"].NumRows);   // ceil(2333 * 0.2) = ceil(466.6)
        Assert.Equal(1866, split["train"].NumRows);
        Assert.Empty(split["train"].Column<string>("text").Intersect(split["test"].Column<string>("text")).Except(
            train.Column<string>("text").GroupBy(t => t).Where(g => g.Count() > 1).Select(g => g.Key)));

        var tokd = small.Map(batch => WhitespaceTokenize(batch.Column<string>("text")), batched: true, removeColumns: ["text"]);
        Assert.Equal(["label", "input_ids", "attention_mask"], tokd.ColumnNames);
        Assert.Equal(1000, tokd.NumRows);
        Assert.Equal(new Sequence(new Value("int32")), tokd.Features["input_ids"]);
        for (int i = 0; i < 1000; i += 97)
        {
            Assert.Equal(small.Column<string>("text")[i].Split(' ', StringSplitOptions.RemoveEmptyEntries).Length, tokd.Column<int[]>("input_ids")[i].Length);
            Assert.Equal(small.Column<long>("label")[i], tokd.Column<long>("label")[i]);
        }
    }

    [Fact]
    public void StratifiedSplitKeepsClassProportions()
    {
        var train = LoadTopics()["train"].CastColumn("label", new ClassLabel(Topics));
        var split = train.TrainTestSplit(testSize: 0.2, seed: 7, stratifyByColumn: "label");
        Assert.Equal(467, split["test"].NumRows);
        Assert.Equal(1866, split["train"].NumRows);
        var all = train.Column<long>("label").GroupBy(x => x).ToDictionary(g => g.Key, g => g.Count());
        var test = split["test"].Column<long>("label").GroupBy(x => x).ToDictionary(g => g.Key, g => g.Count());
        foreach (var (k, n) in all) Assert.InRange(test[k], Math.Floor(n * 467.0 / 2333) - 1, Math.Ceiling(n * 467.0 / 2333) + 1);
        var again = train.TrainTestSplit(testSize: 0.2, seed: 7, stratifyByColumn: "label");
        Assert.Equal(split["test"].Column<string>("text"), again["test"].Column<string>("text"));
        Assert.Throws<ArgumentException>(() => LoadTopics()["train"].TrainTestSplit(0.2, seed: 1, stratifyByColumn: "label"));
    }

    [Fact]
    public void QuotesJsonl()
    {
        var ds = DatasetLoader.LoadDataset("json", Fixtures.Data("quotes.jsonl"))["train"];
        Assert.Equal(13301, ds.NumRows);
        Assert.Equal(["quote", "author", "tags"], ds.ColumnNames);
        Assert.Equal(new Value("string"), ds.Features["quote"]);
        Assert.Equal(new Sequence(new Value("string")), ds.Features["tags"]);
        Assert.Equal(["art"], ds.Column<string[]>("tags")[0]);
        Assert.Equal("Robert Heinlein", ds[1]["author"]);
        var withAuthor = ds.Filter(r => !string.IsNullOrEmpty((string?)r["author"]));
        Assert.True(withAuthor.NumRows < ds.NumRows && withAuthor.NumRows > 0);
        var tokd = ds.Map(b => WhitespaceTokenize(b.Column<string>("quote")), batched: true, removeColumns: ["quote", "author", "tags"]);
        Assert.Equal(13301, tokd.NumRows);
        Assert.Equal(["input_ids", "attention_mask"], tokd.ColumnNames);
    }

    internal static Dictionary<string, IList> WhitespaceTokenize(IReadOnlyList<string> texts)
    {
        var ids = new List<int[]>(texts.Count);
        var mask = new List<int[]>(texts.Count);
        foreach (var t in texts)
        {
            var words = t.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            ids.Add(words.Select(w => (w.GetHashCode() & 0x7fff)).ToArray());
            mask.Add(Enumerable.Repeat(1, words.Length).ToArray());
        }
        return new Dictionary<string, IList> { ["input_ids"] = ids, ["attention_mask"] = mask };
    }
}
