using System.Text.Json.Nodes;
using Peft.Testing;
using Peft.Transformers;

namespace Peft.Transformers.Tests.Tokenization;

/// <summary>Loading errors, save/reload, batching, padding, truncation, pairs and the legacy files. Expected values
/// are derived from the HF reference encodings, never typed in.</summary>
public class TokenizerBehaviourTests
{
    private static PreTrainedTokenizer Tok(string folder) => TokenizerParityTests.Load(folder);

    private static JsonObject TokenizerJson(string model) =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Model(model), "tokenizer.json")))!;

    private static string WriteFolder(TempDir tmp, JsonObject json, string? config = null)
    {
        File.WriteAllText(Path.Combine(tmp.Path, "tokenizer.json"), json.ToJsonString());
        if (config is not null) File.WriteAllText(Path.Combine(tmp.Path, "tokenizer_config.json"), config);
        return tmp.Path;
    }

    private static IEnumerable<(string Text, int[] With, int[] Without)> RefCases(string name) =>
        TokenizerParityTests.ReferenceCases(name).Select(c => (c!["text"]!.GetValue<string>(),
            c["with_special"]!["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray(),
            c["no_special"]!["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray()));

    [Theory]
    [InlineData("pre_tokenizer", "{\"type\": \"UnicodeScripts\"}", "pre_tokenizer type 'UnicodeScripts' is not supported")]
    [InlineData("normalizer", "{\"type\": \"Precompiled\", \"precompiled_charsmap\": \"\"}", "normalizer type 'Precompiled' is not supported")]
    [InlineData("decoder", "{\"type\": \"CTC\"}", "decoder type 'CTC' is not supported")]
    [InlineData("post_processor", "{\"type\": \"Whatever\"}", "post_processor type 'Whatever' is not supported")]
    [InlineData("model", "{\"type\": \"Unigram\", \"vocab\": [[\"a\"]]}", "model.vocab[0]: expected [piece, score]")]
    [InlineData("model", "{\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}, \"merges\": []}", "model.vocab['a']: expected an integer id")]
    [InlineData("model", "{\"type\": \"SentencePieceChar\", \"vocab\": {}}", "model type 'SentencePieceChar' is not supported")]
    [InlineData("post_processor", "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<x>\", \"type_id\": 0}}], \"pair\": [], \"special_tokens\": {}}", "special token '<x>' is not in special_tokens")]
    [InlineData("normalizer", "{\"lowercase\": true}", "normalizer: missing 'type'")]
    [InlineData("pre_tokenizer", "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(?<=a\"}, \"behavior\": \"Isolated\"}", "is not supported by .NET")]
    public void UnsupportedOrMalformedComponentFailsAtLoadNamingIt(string key, string component, string expected)
    {
        using var tmp = new TempDir();
        var json = TokenizerJson("gpt2-tiny");
        json[key] = JsonNode.Parse(component);
        string dir = WriteFolder(tmp, json);
        var ex = Assert.ThrowsAny<Exception>(() => AutoTokenizer.FromPretrained(dir));
        Assert.Contains(expected, ex.Message);
        Assert.Contains("tokenizer.json", ex.Message);
    }

    [Fact]
    public void MergeWithUnknownTokenFailsAtLoad()
    {
        using var tmp = new TempDir();
        var json = TokenizerJson("gpt2-tiny");
        ((JsonArray)json["model"]!["merges"]!).Add("zzqq xxyy");
        var ex = Assert.Throws<InvalidDataException>(() => AutoTokenizer.FromPretrained(WriteFolder(tmp, json)));
        Assert.Contains("model.merges[", ex.Message);
        Assert.Contains("zzqq", ex.Message);
    }

    [Fact]
    public void NotJsonAndMissingFolderFailClearly()
    {
        using var tmp = new TempDir();
        File.WriteAllText(Path.Combine(tmp.Path, "tokenizer.json"), "{ not json");
        var ex = Assert.Throws<InvalidDataException>(() => AutoTokenizer.FromPretrained(tmp.Path));
        Assert.Contains("tokenizer.json", ex.Message);
        Assert.Throws<DirectoryNotFoundException>(() => AutoTokenizer.FromPretrained(Path.Combine(tmp.Path, "nope")));
    }

    [Theory]
    [InlineData("hf/models/gpt2-tiny", "gpt2-tiny")]
    [InlineData("hf/models/llama-tiny", "llama-tiny")]
    [InlineData("hf/models/bert-tiny", "bert-tiny")]
    [InlineData("hf/models/qwen2-tiny", "qwen2-tiny")]
    [InlineData("tokenizers/llama3", "llama3")]
    public void SavePretrainedReloadsWithIdenticalIds(string folder, string reference)
    {
        var tok = Tok(folder);
        using var tmp = new TempDir();
        tok.SavePretrained(tmp.Path);
        var again = AutoTokenizer.FromTokenizerFile(tmp.Path); // as Tok: the file as written, like the references
        foreach (var (text, with, without) in RefCases(reference))
        {
            Assert.Equal(with, again.Encode(text, true));
            Assert.Equal(without, again.Encode(text, false));
            Assert.Equal(tok.Decode(with, true), again.Decode(with, true));
        }
        Assert.Equal(tok.EosTokenId, again.EosTokenId);
        Assert.Equal(tok.PadTokenId, again.PadTokenId);
        Assert.Equal(tok.ModelMaxLength, again.ModelMaxLength);
        Assert.Equal(tok.ModelInputNames, again.ModelInputNames);
    }

    [Fact]
    public void SavePretrainedKeepsChangedSettings()
    {
        using var tmp = new TempDir();
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("gpt2-tiny"));
        tok.PadToken = tok.EosToken;
        tok.PaddingSide = PaddingSide.Left;
        tok.SavePretrained(tmp.Path);
        var again = AutoTokenizer.FromPretrained(tmp.Path);
        Assert.Equal(tok.EosTokenId, again.PadTokenId);
        Assert.Equal(PaddingSide.Left, again.PaddingSide);
    }

    [Fact]
    public void SpecialTokenPropertiesComeFromTheConfig()
    {
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Model("bert-tiny"), "tokenizer_config.json")))!;
        var tok = Tok("hf/models/bert-tiny");
        var vocab = tok.GetVocab();
        Assert.Equal(cfg["pad_token"]!.GetValue<string>(), tok.PadToken);
        Assert.Equal(vocab[cfg["pad_token"]!.GetValue<string>()], tok.PadTokenId);
        Assert.Equal(vocab[cfg["cls_token"]!.GetValue<string>()], tok.ClsTokenId);
        Assert.Equal(vocab[cfg["sep_token"]!.GetValue<string>()], tok.SepTokenId);
        Assert.Equal(vocab[cfg["mask_token"]!.GetValue<string>()], tok.MaskTokenId);
        Assert.Equal(vocab[cfg["unk_token"]!.GetValue<string>()], tok.UnkTokenId);
        Assert.Null(tok.BosTokenId);
        Assert.Equal(cfg["model_max_length"]!.GetValue<int>(), tok.ModelMaxLength);
        Assert.Contains("token_type_ids", tok.ModelInputNames);

        var qwen = Tok("hf/models/qwen2-tiny");
        var qcfg = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Model("qwen2-tiny"), "tokenizer_config.json")))!;
        Assert.Equal(qwen.GetVocab()[qcfg["eos_token"]!.GetValue<string>()], qwen.EosTokenId);
        Assert.Null(qwen.BosToken);
        Assert.DoesNotContain("token_type_ids", qwen.ModelInputNames);
        var tokens = qwen.ConvertIdsToTokens(qwen.Encode("Hello world"));
        Assert.Equal(qwen.Encode("Hello world"), qwen.ConvertTokensToIds(tokens!).Select(i => i!.Value));
    }

    [Fact]
    public void EncodeBatchPadsAndTruncatesOnTheConfiguredSides()
    {
        var tok = AutoTokenizer.FromTokenizerFile(Fixtures.Model("llama-tiny")); // the references are tokenizers' output
        var cases = RefCases("llama-tiny").Where(c => c.Text.Length > 0).Take(6).ToArray();
        var texts = cases.Select(c => c.Text).ToArray();
        Assert.Throws<InvalidOperationException>(() => tok.EncodeBatch(texts, padding: true));
        tok.PadToken = tok.EosToken;
        int pad = tok.PadTokenId!.Value;
        int longest = cases.Max(c => c.With.Length);

        using (var right = tok.EncodeBatch(texts, padding: true))
        {
            Assert.Equal(new long[] { texts.Length, longest }, right.InputIds.shape);
            Assert.Equal(TorchSharp.torch.ScalarType.Int64, right.InputIds.dtype);
            for (int i = 0; i < texts.Length; i++)
            {
                var exp = cases[i].With.Concat(Enumerable.Repeat(pad, longest - cases[i].With.Length)).ToArray();
                Assert.Equal(exp, right.InputIdsList[i]);
                Assert.Equal(exp.Select(x => (long)x), right.InputIds[i].data<long>().ToArray());
                var mask = Enumerable.Repeat(1L, cases[i].With.Length).Concat(Enumerable.Repeat(0L, longest - cases[i].With.Length));
                Assert.Equal(mask, right.AttentionMask[i].data<long>().ToArray());
            }
            Assert.Null(right.TokenTypeIds);
        }

        tok.PaddingSide = PaddingSide.Left;
        using (var left = tok.EncodeBatch(texts, padding: true))
            for (int i = 0; i < texts.Length; i++)
                Assert.Equal(Enumerable.Repeat(pad, longest - cases[i].With.Length).Concat(cases[i].With), left.InputIdsList[i]);

        using (var cut = tok.EncodeBatch(texts, truncation: true, maxLength: 5))
            for (int i = 0; i < texts.Length; i++)
            {
                // HF: the sequence is cut to max_length minus the special tokens, then <s> is added.
                var exp = cases[i].With.Length <= 5 ? cases[i].With : cases[i].With.Take(1).Concat(cases[i].Without.Take(4)).ToArray();
                Assert.Equal(exp, cut.InputIdsList[i]);
            }

        tok.TruncationSide = TruncationSide.Left;
        using (var cutLeft = tok.EncodeBatch(texts, truncation: true, maxLength: 5))
            for (int i = 0; i < texts.Length; i++)
            {
                var exp = cases[i].With.Length <= 5 ? cases[i].With : cases[i].With.Take(1).Concat(cases[i].Without.TakeLast(4)).ToArray();
                Assert.Equal(exp, cutLeft.InputIdsList[i]);
            }
    }

    [Fact]
    public void ToColumnsGivesOneIntArrayPerRow()
    {
        var tok = Tok("hf/models/bert-tiny");
        var cases = RefCases("bert-tiny").Take(4).ToArray();
        var cols = tok.EncodeBatch(cases.Select(c => c.Text).ToArray(), truncation: true).ToColumns();
        Assert.Equal(new[] { "input_ids", "attention_mask", "token_type_ids" }, cols.Keys.OrderBy(k => k == "token_type_ids" ? 2 : k == "attention_mask" ? 1 : 0));
        var ids = Assert.IsType<List<int[]>>(cols["input_ids"]);
        for (int i = 0; i < cases.Length; i++)
        {
            Assert.Equal(cases[i].With, ids[i]);
            Assert.All(((List<int[]>)cols["attention_mask"])[i], m => Assert.Equal(1, m));
            Assert.All(((List<int[]>)cols["token_type_ids"])[i], m => Assert.Equal(0, m));
        }
        var gpt = Tok("hf/models/gpt2-tiny").EncodeBatch(["a b", "c"]).ToColumns();
        Assert.False(gpt.ContainsKey("token_type_ids"));
    }

    [Fact]
    public void BertPairHasClsASepBSepWithTypeIdsAndSequenceIds()
    {
        var tok = Tok("hf/models/bert-qa-tiny");
        var cases = RefCases("bert-tiny").Where(c => c.Without.Length > 3).Take(2).ToArray();
        var (q, ctx) = (cases[0], cases[1]);
        var enc = tok.EncodePair(q.Text, ctx.Text);
        int cls = tok.ClsTokenId!.Value, sep = tok.SepTokenId!.Value;
        Assert.Equal(new[] { cls }.Concat(q.Without).Append(sep).Concat(ctx.Without).Append(sep), enc.Ids);
        Assert.Equal(Enumerable.Repeat(0, q.Without.Length + 2).Concat(Enumerable.Repeat(1, ctx.Without.Length + 1)), enc.TypeIds);
        Assert.Equal(new int?[] { null }.Concat(q.Without.Select(_ => (int?)0)).Append(null).Concat(ctx.Without.Select(_ => (int?)1)).Append(null), enc.SequenceIds);
        // Offsets of the second sequence point into the second text.
        var single = tok.EncodeWithOffsets(ctx.Text, false);
        Assert.Equal(single.Offsets, enc.Offsets.Skip(q.Without.Length + 2).Take(ctx.Without.Length));
        Assert.Equal(single.WordIds, enc.WordIds.Skip(q.Without.Length + 2).Take(ctx.Without.Length));
        int tokenOfFirstContextChar = enc.CharToToken(single.Offsets[0].Start, 1)!.Value;
        Assert.Equal(q.Without.Length + 2, tokenOfFirstContextChar);

        using var batch = tok.EncodeBatch([q.Text], [ctx.Text]);
        Assert.Equal(enc.TypeIds.Select(x => (long)x), batch.TokenTypeIds!.data<long>().ToArray());
    }

    [Fact]
    public void OnlySecondTruncationWithStrideGivesOverlappingContextWindows()
    {
        var tok = Tok("hf/models/bert-qa-tiny");
        var cases = RefCases("bert-tiny").ToArray();
        var q = cases.First(c => c.Without.Length is > 2 and < 6);
        var ctx = cases.OrderByDescending(c => c.Without.Length).First();
        int max = q.Without.Length + 3 + 10, stride = 4;
        var enc = tok.EncodePair(q.Text, ctx.Text, maxLength: max, strategy: TruncationStrategy.OnlySecond, stride: stride, returnOverflowing: true);
        var windows = new[] { enc }.Concat(enc.Overflowing).ToArray();
        Assert.True(windows.Length > 1);
        var covered = new List<int>();
        for (int w = 0; w < windows.Length; w++)
        {
            var e = windows[w];
            Assert.True(e.Count <= max);
            Assert.Equal(q.Without, e.Ids.Skip(1).Take(q.Without.Length));
            var ctxIds = e.Ids.Where((_, i) => e.SequenceIds[i] == 1).ToArray();
            if (w == 0) covered.AddRange(ctxIds);
            else
            {
                Assert.Equal(covered.TakeLast(stride), ctxIds.Take(stride));
                covered.AddRange(ctxIds.Skip(stride));
            }
        }
        Assert.Equal(ctx.Without, covered);
    }

    [Fact]
    public void LegacyVocabJsonAndMergesTxtGiveTheSameIds()
    {
        using var tmp = new TempDir();
        var json = TokenizerJson("gpt2-tiny");
        File.WriteAllText(Path.Combine(tmp.Path, "vocab.json"), json["model"]!["vocab"]!.ToJsonString());
        var merges = json["model"]!["merges"]!.AsArray().Select(m => m is JsonArray a ? $"{a[0]} {a[1]}" : m!.GetValue<string>());
        File.WriteAllLines(Path.Combine(tmp.Path, "merges.txt"), new[] { "#version: 0.2" }.Concat(merges));
        File.Copy(Path.Combine(Fixtures.Model("gpt2-tiny"), "tokenizer_config.json"), Path.Combine(tmp.Path, "tokenizer_config.json"));
        var tok = AutoTokenizer.FromPretrained(tmp.Path);
        foreach (var (text, with, _) in RefCases("gpt2-tiny"))
            Assert.Equal(with, tok.Encode(text));
    }

    [Fact]
    public void LegacyVocabTxtGivesTheSameIds()
    {
        using var tmp = new TempDir();
        var vocab = TokenizerJson("bert-tiny")["model"]!["vocab"]!.AsObject().OrderBy(kv => kv.Value!.GetValue<int>()).Select(kv => kv.Key);
        File.WriteAllLines(Path.Combine(tmp.Path, "vocab.txt"), vocab);
        File.Copy(Path.Combine(Fixtures.Model("bert-tiny"), "tokenizer_config.json"), Path.Combine(tmp.Path, "tokenizer_config.json"));
        var tok = AutoTokenizer.FromPretrained(tmp.Path);
        foreach (var (text, with, _) in RefCases("bert-tiny"))
            Assert.Equal(with, tok.Encode(text));
    }
}

/// <summary>Truncation windows and pre-tokenization details, checked against the reference encodings.</summary>
public class TokenizerTruncationTests
{
    private static IEnumerable<(string Text, int[] With, int[] Without)> RefCases(string name) =>
        TokenizerParityTests.ReferenceCases(name).Select(c => (c!["text"]!.GetValue<string>(),
            c["with_special"]!["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray(),
            c["no_special"]!["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray()));

    [Theory]
    [InlineData(TruncationSide.Right)]
    [InlineData(TruncationSide.Left)]
    public void SingleSequenceStrideWindowsCoverTheTextWithOverlap(TruncationSide side)
    {
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("bert-ner-tiny"));
        tok.TruncationSide = side;
        var c = RefCases("bert-tiny").OrderByDescending(x => x.Without.Length).First();
        int max = 12, stride = 3, room = max - 2;
        var enc = tok.EncodeWithOffsets(c.Text, maxLength: max, stride: stride, returnOverflowing: true);
        var windows = new[] { enc }.Concat(enc.Overflowing).Select(e => e.Ids.Skip(1).Take(e.Count - 2).ToArray()).ToArray();
        Assert.All(new[] { enc }.Concat(enc.Overflowing), e =>
        {
            Assert.True(e.Count <= max);
            Assert.Equal(tok.ClsTokenId, e.Ids[0]);
            Assert.Equal(tok.SepTokenId, e.Ids[^1]);
        });
        // HF Encoding::truncate: windows of `room` tokens stepping by room - stride, from the kept side.
        var expected = new List<int[]>();
        int len = c.Without.Length, step = room - stride;
        if (side == TruncationSide.Right)
            for (int s = 0; ; s += step) { int e = Math.Min(s + room, len); expected.Add(c.Without[s..e]); if (e == len) break; }
        else
            for (int e = len; ; e -= step) { int s = Math.Max(e - room, 0); expected.Add(c.Without[s..e]); if (s == 0) break; }
        Assert.Equal(expected.Count, windows.Length);
        for (int i = 0; i < windows.Length; i++) Assert.Equal(expected[i], windows[i]);
    }

    [Fact]
    public void LongestFirstKeepsTheShortSequenceWhole()
    {
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("bert-tiny"));
        var cases = RefCases("bert-tiny").ToArray();
        var shortCase = cases.First(c => c.Without.Length is > 2 and < 6);
        var longCase = cases.OrderByDescending(c => c.Without.Length).First();
        int max = shortCase.Without.Length + 3 + 8;
        var enc = tok.EncodePair(shortCase.Text, longCase.Text, maxLength: max);
        Assert.Equal(max, enc.Count);
        Assert.Equal(shortCase.Without, enc.Ids.Where((_, i) => enc.SequenceIds[i] == 0));
        Assert.Equal(longCase.Without.Take(8), enc.Ids.Where((_, i) => enc.SequenceIds[i] == 1));
        var both = tok.EncodePair(longCase.Text, longCase.Text, maxLength: 13);
        Assert.Equal(longCase.Without.Take(5), both.Ids.Where((_, i) => both.SequenceIds[i] == 0));
        Assert.Equal(longCase.Without.Take(5), both.Ids.Where((_, i) => both.SequenceIds[i] == 1));
    }

    [Fact]
    public void SupplementaryDigitsAreGroupedByCodePointInLlama3Regex()
    {
        // Llama-3 splits digits in groups of at most three (\p{N}{1,3}); a mathematical digit is one code point
        // (two UTF-16 units), so four of them form two pre-tokens (words): three digits, then one.
        var tok = TokenizerParityTests.Load("tokenizers/llama3");
        string d = "\U0001D7CF";
        var enc = tok.EncodeWithOffsets(d + d + d + d, false);
        Assert.Equal(new int?[] { 0, 1 }, enc.WordIds.Distinct());
        Assert.Equal(0, enc.Offsets.Where((_, i) => enc.WordIds[i] == 0).Min(o => o.Start));
        Assert.Equal(6, enc.Offsets.Where((_, i) => enc.WordIds[i] == 0).Max(o => o.End));
        Assert.Equal(6, enc.Offsets.Where((_, i) => enc.WordIds[i] == 1).Min(o => o.Start));
        Assert.Equal(tok.Encode(d + d + d, false).Concat(tok.Encode(d, false)), enc.Ids);
    }
}
