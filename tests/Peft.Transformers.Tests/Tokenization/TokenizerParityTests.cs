using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Peft.Testing;
using Peft.Transformers;

namespace Peft.Transformers.Tests.Tokenization;

/// <summary>Every case of shared/fixtures/hf/tokenizers/*.reference.json (HF tokenizers output) must match exactly.</summary>
public class TokenizerParityTests
{
    private static readonly ConcurrentDictionary<string, PreTrainedTokenizer> Cache = new();

    /// <summary>(reference name, tokenizer folder) — the BERT NER/QA folders share bert-tiny's tokenizer.json (checked below).</summary>
    public static TheoryData<string, string> Cases => new()
    {
        { "gpt2-tiny", "hf/models/gpt2-tiny" },
        { "opt-tiny", "hf/models/opt-tiny" },
        { "qwen2-tiny", "hf/models/qwen2-tiny" },
        { "llama-tiny", "hf/models/llama-tiny" },
        { "bert-tiny", "hf/models/bert-tiny" },
        { "bert-tiny", "hf/models/bert-ner-tiny" },
        { "bert-tiny", "hf/models/bert-qa-tiny" },
        { "llama2", "tokenizers/llama2" },
        { "llama3", "tokenizers/llama3" },
        { "qwen3", "tokenizers/qwen3" },
    };

    internal static string FixturesDir => Path.Combine(Fixtures.Shared, "fixtures");

    /// <summary>
    /// The folder's tokenizer.json as written (the references were made with tokenizers' <c>Tokenizer.from_file</c>);
    /// AutoTokenizer's transformers-5 class pipelines (LlamaTokenizer) are checked in LlamaTokenizerClassTests.
    /// </summary>
    internal static PreTrainedTokenizer Load(string folder) =>
        Cache.GetOrAdd(folder, f => AutoTokenizer.FromTokenizerFile(Path.Combine(FixturesDir, f)));

    internal static JsonArray ReferenceCases(string name)
    {
        var doc = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Hf, "tokenizers", name + ".reference.json")))!;
        return (JsonArray)doc["cases"]!;
    }

    private static int[] Ints(JsonNode n) => n.AsArray().Select(x => x!.GetValue<int>()).ToArray();

    private static string[] Strings(JsonNode n) => n.AsArray().Select(x => x!.GetValue<string>()).ToArray();

    private static void AssertNoFailures(List<string> failures, string what, int total)
    {
        Assert.True(total > 0, $"{what}: no cases were checked");
        Assert.True(failures.Count == 0, $"{what}: {failures.Count} of {total} cases differ:\n" + string.Join("\n", failures.Take(15)));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void IdsAndTokensMatchReference(string reference, string folder)
    {
        var tok = Load(folder);
        var cases = ReferenceCases(reference);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            string text = c!["text"]!.GetValue<string>();
            foreach (var (key, special) in new[] { ("with_special", true), ("no_special", false) })
            {
                var expIds = Ints(c[key]!["ids"]!);
                var expTokens = Strings(c[key]!["tokens"]!);
                var enc = tok.EncodeWithOffsets(text, special);
                if (!expIds.SequenceEqual(enc.Ids))
                    failures.Add($"{key} ids for {Show(text)}: expected [{string.Join(",", expIds)}] got [{string.Join(",", enc.Ids)}]");
                if (!expTokens.SequenceEqual(enc.Tokens))
                    failures.Add($"{key} tokens for {Show(text)}: expected [{string.Join("|", expTokens)}] got [{string.Join("|", enc.Tokens)}]");
                if (!expIds.SequenceEqual(tok.Encode(text, special)))
                    failures.Add($"{key} Encode() for {Show(text)} differs from EncodeWithOffsets");
            }
            if (!Strings(c["no_special"]!["tokens"]!).SequenceEqual(tok.Tokenize(text)))
                failures.Add($"Tokenize for {Show(text)}");
        }
        AssertNoFailures(failures, $"{reference} ({folder})", cases.Count);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void DecodeMatchesReference(string reference, string folder)
    {
        var tok = Load(folder);
        var cases = ReferenceCases(reference);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            var ids = Ints(c!["with_special"]!["ids"]!);
            string keep = c["decode_keep_special"]!.GetValue<string>();
            string skip = c["decode_skip_special"]!.GetValue<string>();
            // The reference is HF tokenizers' decode, which has no clean_up_tokenization step.
            string gotKeep = tok.Decode(ids, skipSpecialTokens: false, cleanUpTokenizationSpaces: false);
            string gotSkip = tok.Decode(ids, skipSpecialTokens: true, cleanUpTokenizationSpaces: false);
            if (gotKeep != keep) failures.Add($"keep-special decode: expected {Show(keep)} got {Show(gotKeep)}");
            if (gotSkip != skip) failures.Add($"skip-special decode: expected {Show(skip)} got {Show(gotSkip)}");
        }
        AssertNoFailures(failures, $"{reference} ({folder})", cases.Count);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void OffsetsMatchReference(string reference, string folder)
    {
        var tok = Load(folder);
        var cases = ReferenceCases(reference);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            string text = c!["text"]!.GetValue<string>();
            // HF reports offsets in code points (Python str indices); ours are UTF-16 indices. Convert the reference.
            var cpToUtf16 = new List<int>();
            for (int i = 0; i < text.Length; i++) if (!char.IsLowSurrogate(text[i])) cpToUtf16.Add(i);
            cpToUtf16.Add(text.Length);
            foreach (var key in new[] { "with_special", "no_special" })
            {
                var exp = c[key]!["offsets"]!.AsArray().Select(o => (cpToUtf16[o![0]!.GetValue<int>()], cpToUtf16[o[1]!.GetValue<int>()])).ToArray();
                var got = tok.EncodeWithOffsets(text, key == "with_special").Offsets;
                if (!exp.SequenceEqual(got))
                    failures.Add($"{key} offsets for {Show(text)}: expected [{string.Join(",", exp)}] got [{string.Join(",", got)}]");
            }
        }
        AssertNoFailures(failures, $"{reference} ({folder})", cases.Count);
    }

    [Fact]
    public void BertFoldersShareOneTokenizerJson()
    {
        string a = File.ReadAllText(Path.Combine(Fixtures.Model("bert-tiny"), "tokenizer.json"));
        Assert.Equal(a, File.ReadAllText(Path.Combine(Fixtures.Model("bert-ner-tiny"), "tokenizer.json")));
        Assert.Equal(a, File.ReadAllText(Path.Combine(Fixtures.Model("bert-qa-tiny"), "tokenizer.json")));
    }

    internal static string Show(string s) => System.Text.Json.JsonSerializer.Serialize(s);
}
