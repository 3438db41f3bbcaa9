using System.Collections;
using Peft.Datasets;

namespace Peft.Datasets.Tests;

public class DatasetTests
{
    private static Dataset Small() => Dataset.FromDict(new Dictionary<string, IList>
    {
        ["text"] = new List<string> { "a b c", "d e", "f", "g h i j", "k l" },
        ["label"] = new List<long> { 1, 0, 1, 2, 0 },
    });

    [Fact]
    public void FromDictInfersTypesAndGivesRowsAndSlices()
    {
        var ds = Small();
        Assert.Equal(5, ds.NumRows);
        Assert.Equal(["text", "label"], ds.ColumnNames);
        Assert.Equal(new Value("string"), ds.Features["text"]);
        Assert.Equal(new Value("int64"), ds.Features["label"]);
        Assert.Equal("d e", ds[1]["text"]);
        Assert.Equal(0L, ds[1]["label"]);
        Assert.Equal(0L, ds[-1]["label"]);
        var head = ds[..2];
        Assert.Equal(new List<string?> { "a b c", "d e" }, head["text"].Cast<string?>().ToList());
        Assert.Equal(3, ds.Slice(2, 10)["label"].Count);
        Assert.Equal([1, 0, 1, 2, 0], ds.Column<int>("label").ToArray());
        Assert.Contains("num_rows: 5", ds.ToString());
        Assert.Contains("features: ['text', 'label']", ds.ToString());
    }

    [Fact]
    public void TypedListColumnsFromTokenizerLikeOutputs()
    {
        var ds = Dataset.FromDict(new Dictionary<string, IList>
        {
            ["ids32"] = new List<int[]> { new[] { 1, 2 }, new[] { 3 } },
            ["ids64"] = new List<long[]> { new long[] { 1 }, new long[] { 2, 3, 4 } },
            ["nested"] = new List<List<int>> { new() { 5 }, new() { 6, 7 } },
            ["floats"] = new List<float[]> { new[] { 0.5f }, new[] { 1.5f, 2.5f } },
            ["deep"] = new List<int[][]> { new[] { new[] { 1 }, new[] { 2, 3 } }, new[] { new[] { 4 } } },
            ["flag"] = new[] { true, false },
            ["score"] = new[] { 0.25, 0.75 },
        });
        Assert.Equal(new Sequence(new Value("int32")), ds.Features["ids32"]);
        Assert.Equal(new Sequence(new Value("int64")), ds.Features["ids64"]);
        Assert.Equal(new Sequence(new Value("int32")), ds.Features["nested"]);
        Assert.Equal(new Sequence(new Value("float32")), ds.Features["floats"]);
        Assert.Equal(new Sequence(new Sequence(new Value("int32"))), ds.Features["deep"]);
        Assert.Equal(new Value("bool"), ds.Features["flag"]);
        Assert.Equal(new Value("float64"), ds.Features["score"]);
        Assert.Equal([3], ds.Column<int[]>("ids32")[1]);
        Assert.Equal([1L, 2L], ds.Column<long[]>("ids32")[0]);
        Assert.Equal([2L, 3L, 4L], ds.Column<List<long>>("ids64")[1]);
        Assert.Equal(new[] { 6, 7 }, (int[])ds[1]["nested"]!);
        Assert.Equal([2, 3], ds.Column<int[][]>("deep")[0][1]);
        Assert.Equal(new[] { 1.5f, 2.5f }, ds.Column<float[]>("floats")[1]);
    }

    [Fact]
    public void BatchedMapWithRemovedColumnsBuildsTypedColumns()
    {
        var ds = Small();
        var vocab = new Dictionary<string, int>();
        var tokd = ds.Map(batch =>
        {
            var ids = new List<int[]>();
            var mask = new List<int[]>();
            foreach (var t in batch.Column<string>("text"))
            {
                var ii = t.Split(' ').Select(w => vocab.TryGetValue(w, out var id) ? id : vocab[w] = vocab.Count).ToArray();
                ids.Add(ii);
                mask.Add(Enumerable.Repeat(1, ii.Length).ToArray());
            }
            return new Dictionary<string, IList> { ["input_ids"] = ids, ["attention_mask"] = mask };
        }, batched: true, removeColumns: ["text"], batchSize: 2);
        Assert.Equal(["label", "input_ids", "attention_mask"], tokd.ColumnNames);
        Assert.Equal(new Sequence(new Value("int32")), tokd.Features["input_ids"]);
        Assert.Equal(5, tokd.NumRows);
        Assert.Equal([0, 1, 2], tokd.Column<int[]>("input_ids")[0]);
        Assert.Equal([10, 11], tokd.Column<int[]>("input_ids")[4]);
        Assert.Equal([1, 1, 1, 1], tokd.Column<int[]>("attention_mask")[3]);
        Assert.Equal([1L, 0, 1, 2, 0], tokd.Column<long>("label").ToArray());
    }

    [Fact]
    public void MapAfterShuffleFollowsTheShuffledOrderAndRowMapWorks()
    {
        var ds = Small().Shuffle(seed: 3);
        var mapped = ds.Map(row => new Dictionary<string, object?> { ["len"] = ((string)row["text"]!).Length });
        Assert.False(mapped.HasIndices);
        Assert.Equal(ds.Column<string>("text").Select(t => t.Length), mapped.Column<int>("len"));
        Assert.Equal(ds.Column<string>("text"), mapped.Column<string>("text"));
    }

    [Fact]
    public void MapErrorsNameTheProblem()
    {
        var ds = Small();
        var e1 = Assert.Throws<InvalidOperationException>(() => ds.Map(b => new Dictionary<string, IList>
        {
            ["a"] = new List<int> { 1 },
            ["b"] = new List<int> { 1, 2 },
        }, batched: true));
        Assert.Contains("unequal length", e1.Message);
        Assert.Contains("'a' has 1", e1.Message);
        Assert.Contains("'b' has 2", e1.Message);
        var e2 = Assert.Throws<InvalidOperationException>(() => ds.Map(b => new Dictionary<string, IList>
        {
            ["chunk"] = Enumerable.Range(0, b.Count * 2).ToList(),
        }, batched: true));
        Assert.Contains("'text'", e2.Message);
        // with the inputs removed the row count may change (HF: chunking long texts)
        var grown = ds.Map(b => new Dictionary<string, IList> { ["chunk"] = Enumerable.Range(0, b.Count * 2).ToList() },
            batched: true, removeColumns: ["text", "label"]);
        Assert.Equal(10, grown.NumRows);
        var e3 = Assert.Throws<ArgumentException>(() => ds.RemoveColumns("nope"));
        Assert.Contains("'nope'", e3.Message);
    }

    [Fact]
    public void FilterSelectSortUniqueAndColumnVerbs()
    {
        var ds = Small();
        var ones = ds.Filter(row => (long)row["label"]! == 1);
        Assert.Equal(["a b c", "f"], ones.Column<string>("text"));
        var sel = ds.Select([4, 0]);
        Assert.Equal(["k l", "a b c"], sel.Column<string>("text"));
        var sorted = ds.Sort("label");
        Assert.Equal([0L, 0, 1, 1, 2], sorted.Column<long>("label"));
        Assert.Equal(["d e", "k l", "a b c", "f", "g h i j"], sorted.Column<string>("text"));
        Assert.Equal([2L, 1, 1, 0, 0], ds.Sort("label", reverse: true).Column<long>("label"));
        Assert.Equal(new object?[] { 1L, 0L, 2L }, ds.Unique("label"));
        var renamed = ds.RenameColumn("label", "labels").RemoveColumns("text");
        Assert.Equal(["labels"], renamed.ColumnNames);
        var added = ds.Shuffle(1).AddColumn("idx", Enumerable.Range(0, 5).ToList());
        Assert.Equal(new Value("int32"), added.Features["idx"]);
        var both = Dataset.Concatenate(ds, ds.Select([0]));
        Assert.Equal(6, both.NumRows);
        Assert.Equal("a b c", both[5]["text"]);
        Assert.Throws<IndexOutOfRangeException>(() => ds.Select([5]));
        var rows = Dataset.FromRows([
            new Dictionary<string, object?> { ["a"] = 1L, ["b"] = "x" },
            new Dictionary<string, object?> { ["a"] = 2.5 },
        ]);
        Assert.Equal(new Value("float64"), rows.Features["a"]);
        Assert.Null(rows[1]["b"]);
        Assert.Contains("a b c", ds.ToPrettyString());
    }

    [Fact]
    public void ClassLabelRoundTripAndClassEncode()
    {
        var ds = Dataset.FromDict(new Dictionary<string, IList> { ["topic"] = new List<string> { "work", "art", "work", "science" } });
        var enc = ds.ClassEncodeColumn("topic");
        var cl = Assert.IsType<ClassLabel>(enc.Features["topic"]);
        Assert.Equal(["art", "science", "work"], cl.Names);
        Assert.Equal([2L, 0, 2, 1], enc.Column<long>("topic"));
        Assert.Equal(ds.Column<string>("topic"), enc.Column<long>("topic").Select(cl.Int2Str));
        var names = new ClassLabel(["computers", "politics", "science", "work", "art"]);
        var cast = ds.CastColumn("topic", names);
        Assert.Equal([3L, 4, 3, 2], cast.Column<long>("topic"));
        var ex = Assert.Throws<ArgumentException>(() => Dataset.FromDict(new Dictionary<string, IList> { ["t"] = new List<string> { "x" } }).CastColumn("t", names));
        Assert.Contains("'x'", ex.Message);
        var bad = Assert.Throws<ArgumentException>(() => Dataset.FromDict(new Dictionary<string, IList> { ["t"] = new List<long> { 7 } }).CastColumn("t", names));
        Assert.Contains("7", bad.Message);
        // NER-style tags: a list of class names per row → Sequence(ClassLabel)
        var bio = new ClassLabel(["O", "B-PER", "I-PER"]);
        var tags = Dataset.FromDict(new Dictionary<string, IList> { ["ner_tags"] = new List<string[]> { new[] { "B-PER", "I-PER", "O" }, new[] { "O" } } })
            .CastColumn("ner_tags", new Sequence(bio));
        Assert.Equal(new Sequence(bio), tags.Features["ner_tags"]);
        Assert.Equal([1L, 2, 0], tags.Column<long[]>("ner_tags")[0]);
        var asInts = tags.CastColumn("ner_tags", new Sequence(new Value("int64")));
        Assert.Equal([0L], asInts.Column<long[]>("ner_tags")[1]);
    }

    [Fact]
    public void TrainTestSplitSizesFollowHfRounding()
    {
        var ds = Dataset.FromDict(new Dictionary<string, IList> { ["x"] = Enumerable.Range(0, 10).ToList() });
        var split = ds.TrainTestSplit(testSize: 0.25, seed: 42);
        Assert.Equal(3, split["test"].NumRows);   // ceil(2.5)
        Assert.Equal(7, split["train"].NumRows);
        // HF: permutation = default_rng(seed).permutation(n); test = perm[:n_test]; train = perm[n_test:]
        Assert.Equal([5, 6, 0], split["test"].Column<int>("x"));
        Assert.Equal([7, 3, 2, 4, 9, 1, 8], split["train"].Column<int>("x"));
        var bySize = ds.TrainTestSplit(trainSize: 0.55, seed: 0);
        Assert.Equal(5, bySize["train"].NumRows);  // floor(5.5)
        Assert.Equal(5, bySize["test"].NumRows);
        var counts = ds.TrainTestSplit(2, seed: 1);
        Assert.Equal(2, counts["test"].NumRows);
        var positional = ds.TrainTestSplit(0.25, 42);   // DESIGN contract: TrainTestSplit(double testSize, int? seed)
        Assert.Equal(split["test"].Column<int>("x"), positional["test"].Column<int>("x"));
        var noShuffle = ds.TrainTestSplit(0.2, shuffle: false);
        Assert.Equal([8, 9], noShuffle["test"].Column<int>("x"));
        Assert.Throws<ArgumentException>(() => ds.TrainTestSplit(1.5));
    }

    // The shape of the DESIGN.md example: a tokenizer whose EncodeBatch(...).ToColumns() returns
    // IReadOnlyDictionary<string, IList> of List<int[]> (as Peft.Transformers' BatchEncoding does).
    private sealed class FakeEncoding(List<int[]> ids)
    {
        public IReadOnlyDictionary<string, IList> ToColumns() => new Dictionary<string, IList>
        {
            ["input_ids"] = ids,
            ["attention_mask"] = ids.Select(r => Enumerable.Repeat(1, r.Length).ToArray()).ToList(),
        };
    }

    private sealed class FakeTokenizer
    {
        public FakeEncoding EncodeBatch(IReadOnlyList<string> texts, bool truncation = false) =>
            new(texts.Select(t => t.Split(' ').Select(w => (int)w[0]).Take(truncation ? 2 : int.MaxValue).ToArray()).ToList());
    }

    [Fact]
    public void DesignExampleCompilesAndWorks()
    {
        var tok = new FakeTokenizer();
        var ds = new DatasetDict { ["train"] = Small() };
        Dataset small = ds["train"].Shuffle(seed: 42).Select(Enumerable.Range(0, 3));
        Dataset tokd = small.Map(batch => tok.EncodeBatch(batch.Column<string>("text"), truncation: true).ToColumns(), batched: true, removeColumns: ["text"]);
        Assert.Equal(["label", "input_ids", "attention_mask"], tokd.ColumnNames);
        Assert.Equal(3, tokd.NumRows);
        Assert.Equal(small.Column<string>("text").Select(t => t.Split(' ').Take(2).Select(w => (int)w[0]).ToArray()), tokd.Column<int[]>("input_ids"));
        var split = tokd.TrainTestSplit(0.34, seed: 1);
        Assert.Equal(2, split["test"].NumRows);   // ceil(3 * 0.34) = 2
        Assert.Equal(1, split["train"].NumRows);
        var dictMapped = ds.Map(b => tok.EncodeBatch(b.Column<string>("text")).ToColumns(), batched: true, removeColumns: ["text"]);
        Assert.Equal(5, dictMapped["train"].NumRows);
    }

    [Fact]
    public void IterFeaturesTextDictVerbsAndConcatenateMismatch()
    {
        var ds = Small();
        var batches = ds.Iter(2).ToList();
        Assert.Equal([2, 2, 1], batches.Select(b => b["text"].Count));
        Assert.Equal(2, ds.Iter(2, dropLastBatch: true).Count());
        Assert.Equal("{'text': Value('string'), 'label': Value('int64')}", ds.Features.ToString());
        Assert.Equal("{'text': 'a b c', 'label': 1}", ds[0].ToString());
        var dd = new DatasetDict { ["train"] = ds, ["test"] = ds.Select([0, 1]) };
        var shuffled = dd.Shuffle(seed: 42);
        Assert.Equal(ds.Shuffle(42).Column<string>("text"), shuffled["train"].Column<string>("text"));
        var filtered = dd.Filter(r => (long)r["label"]! > 0).RemoveColumns("text");
        Assert.Equal(new Dictionary<string, int> { ["train"] = 3, ["test"] = 1 }, filtered.NumRows);
        Assert.Equal(["label"], filtered["test"].ColumnNames);
        Assert.Contains("test: Dataset({", dd.ToString());
        var other = Dataset.FromDict(new Dictionary<string, IList> { ["text"] = new List<string> { "x" }, ["label"] = new List<int> { 1 } });
        var e = Assert.Throws<ArgumentException>(() => Dataset.Concatenate(ds, other));
        Assert.Contains("can't be aligned", e.Message);
        Assert.Throws<KeyNotFoundException>(() => dd["validation"]);
    }

    [Fact]
    public void MapReportsProgressAndCanBeCancelled()
    {
        var ds = Dataset.FromDict(new Dictionary<string, IList> { ["x"] = Enumerable.Range(0, 25).ToList() });
        var seen = new List<int>();
        var progress = new SyncProgress(seen.Add);
        ds.Map(b => new Dictionary<string, IList> { ["y"] = b.Column<int>("x").Select(v => v * 2).ToList() }, batched: true, batchSize: 10, progress: progress);
        Assert.Equal([10, 20, 25], seen);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.Throws<OperationCanceledException>(() => ds.Map(b => new Dictionary<string, IList>(), batched: true, cancellationToken: cts.Token));
    }

    private sealed class SyncProgress(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }
}
