using Peft.Testing;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Training;

/// <summary>The data collators and <c>tokenizer.Pad</c> behave as HF's (padding values and sides, label handling, MLM masking).</summary>
public class CollatorTests
{
    private static IReadOnlyDictionary<string, object?> Row(params (string, object?)[] kv) => kv.ToDictionary(x => x.Item1, x => x.Item2);

    [Fact]
    public void DefaultCollatorStacksAndRenamesLabel()
    {
        var batch = new DefaultDataCollator().Collate([Row(("input_ids", new[] { 1, 2 }), ("label", 3L), ("text", "a")), Row(("input_ids", new[] { 4, 5 }), ("label", 0L), ("text", "b"))]);
        Assert.Equal(["input_ids", "labels"], batch.Keys.Order());
        Assert.Equal([2L, 2L], batch["input_ids"].shape);
        Assert.Equal(new long[] { 3, 0 }, batch["labels"].data<long>().ToArray());
        Assert.Equal(ScalarType.Int64, batch["labels"].dtype);
        var e = Assert.Throws<InvalidOperationException>(() => new DefaultDataCollator().Collate([Row(("input_ids", new[] { 1 })), Row(("input_ids", new[] { 1, 2 }))]));
        Assert.Contains("input_ids", e.Message);
    }

    [Fact]
    public void PaddingCollatorPadsToTheLongestRowRoundedUpOnTheTokenizerSide()
    {
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("bert-tiny"));
        int pad = tok.PadTokenId!.Value;
        var rows = new[] { Row(("input_ids", new[] { 101, 7, 102 }), ("token_type_ids", new[] { 0, 0, 0 }), ("label", 1L)), Row(("input_ids", new[] { 101, 102 }), ("token_type_ids", new[] { 0, 0 }), ("label", 0L)) };
        var batch = new DataCollatorWithPadding(tok, padToMultipleOf: 4).Collate(rows);
        Assert.Equal([2L, 4L], batch["input_ids"].shape);
        Assert.Equal(new long[] { 101, 7, 102, pad, 101, 102, pad, pad }, batch["input_ids"].data<long>().ToArray());
        Assert.Equal(new long[] { 1, 1, 1, 0, 1, 1, 0, 0 }, batch["attention_mask"].data<long>().ToArray());
        Assert.Equal(new long[] { 1, 0 }, batch["labels"].data<long>().ToArray());
        tok.PaddingSide = PaddingSide.Left;
        var left = tok.Pad(rows);
        Assert.Equal(new long[] { pad, 101, 102 }, (long[])left[1]["input_ids"]!);
        Assert.Equal(new long[] { 0, 1, 1 }, (long[])left[1]["attention_mask"]!);
    }

    [Fact]
    public void CausalLmCollatorCopiesIdsToLabelsWithPadsIgnored()
    {
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("opt-tiny"));
        int pad = tok.PadTokenId!.Value;
        var batch = new DataCollatorForLanguageModeling(tok, mlm: false).Collate([Row(("input_ids", new[] { 2, 10, 11 })), Row(("input_ids", new[] { 2, 12 }))]);
        Assert.Equal(new long[] { 2, 10, 11, 2, 12, pad }, batch["input_ids"].data<long>().ToArray());
        Assert.Equal(new long[] { 2, 10, 11, 2, 12, -100 }, batch["labels"].data<long>().ToArray());
    }

    [Fact]
    public void MaskedLmCollatorMasks15PercentAs80_10_10FromItsSeedAndNeverSpecialTokens()
    {
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("bert-tiny"));
        int cls = tok.ClsTokenId!.Value, sep = tok.SepTokenId!.Value;
        var ids = Enumerable.Range(0, 64).Select(_ => new[] { cls }.Concat(Enumerable.Range(100, 200)).Append(sep).ToArray()).ToArray();
        var rows = ids.Select(r => Row(("input_ids", r))).ToArray();
        using var c1 = new DataCollatorForLanguageModeling(tok, mlm: true, seed: 5);
        using var c2 = new DataCollatorForLanguageModeling(tok, mlm: true, seed: 5);
        var a = c1.Collate(rows);
        var b = c2.Collate(rows);
        TensorAssert.Equal(a["input_ids"], b["input_ids"], "same seed, same masking");
        var labels = a["labels"].data<long>().ToArray();
        var inputs = a["input_ids"].data<long>().ToArray();
        var original = ids.SelectMany(r => r).Select(x => (long)x).ToArray();
        int chosen = 0, masked = 0, kept = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            if (labels[i] == -100) { Assert.Equal(original[i], inputs[i]); continue; }
            Assert.NotEqual(cls, original[i]);
            Assert.NotEqual(sep, original[i]);
            Assert.Equal(original[i], labels[i]);
            chosen++;
            if (inputs[i] == tok.MaskTokenId) masked++;
            else if (inputs[i] == original[i]) kept++;
        }
        double n = 64 * 200;
        Assert.InRange(chosen / n, 0.13, 0.17);
        Assert.InRange((double)masked / chosen, 0.76, 0.84);
        Assert.InRange((double)kept / chosen, 0.07, 0.13);
        var state = c1.GetRngState();
        var next = c1.Collate(rows);
        c1.SetRngState(state);
        TensorAssert.Equal(next["input_ids"], c1.Collate(rows)["input_ids"], "restored generator state repeats the draw");
    }

    [Fact]
    public void TokenClassificationCollatorPadsLabelsWithMinus100()
    {
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("bert-tiny"));
        var batch = new DataCollatorForTokenClassification(tok).Collate([Row(("input_ids", new[] { 101, 7, 102 }), ("labels", new[] { -100, 3, -100 })), Row(("input_ids", new[] { 101, 102 }), ("labels", new[] { -100, -100 }))]);
        Assert.Equal(new long[] { -100, 3, -100, -100, -100, -100 }, batch["labels"].data<long>().ToArray());
        Assert.Equal([2L, 3L], batch["input_ids"].shape);
    }

    [Fact]
    public void Seq2SeqCollatorPadsLabelsToTheirOwnLongestRow()
    {
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("bert-tiny"));
        var batch = new DataCollatorForSeq2Seq(tok, padToMultipleOf: 2).Collate([Row(("input_ids", new[] { 5, 6, 7 }), ("labels", new[] { 9 })), Row(("input_ids", new[] { 5 }), ("labels", new[] { 8, 9, 10 }))]);
        Assert.Equal([2L, 4L], batch["input_ids"].shape);
        Assert.Equal(new long[] { 9, -100, -100, -100, 8, 9, 10, -100 }, batch["labels"].data<long>().ToArray());
    }
}
