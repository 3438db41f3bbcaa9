using Peft.Testing;
using Peft.Transformers;

namespace Peft.Transformers.Tests.Tokenization;

/// <summary>
/// transformers 5's <c>LlamaTokenizer</c> (what <c>AutoTokenizer.from_pretrained</c> builds for tokenizer_class
/// "LlamaTokenizer") takes only the vocabulary and merges from tokenizer.json and tokenizes with a Metaspace
/// pre-tokenizer (no normalizer): prepend scheme "first" by default, "always" when tokenizer_config.json says
/// <c>legacy: true</c> (the real Llama-2 folder). The Llama-2 tokenizer.json itself (tokenizers' <c>from_file</c>, the
/// fixture references) uses a <c>Prepend("▁")</c> normalizer. The two agree except where a piece already starts with
/// a space ("▁" is not prepended again) and, for "first", after a special token (only the text at offset 0 gets "▁").
/// The file as written is checked against the fixture references (TokenizerParityTests); these tests check the class
/// pipeline against it by those rules: for a text starting with a space, the class gives the file's ids for the text
/// without that first space, over every reference text, plus leading / repeated spaces and the empty string.
/// </summary>
public class LlamaTokenizerClassTests
{
    public static TheoryData<string, string> Folders => new()
    {
        { "hf/models/llama-tiny", "first" },
        { "tokenizers/llama2", "always" },
    };

    public static TheoryData<string> FolderNames => new() { "hf/models/llama-tiny", "tokenizers/llama2" };

    private static PreTrainedTokenizer Auto(string folder) => AutoTokenizer.FromPretrained(Path.Combine(TokenizerParityTests.FixturesDir, folder));

    private static readonly string[] SpaceCases =
    [
        " leading space", "  two leading spaces", "   ", " ", "", "hello  world", "a   b    c", "trailing  ", " \tspace then tab",
        "  \u00A0no-break after spaces", " 你好 世界",
    ];

    private static IEnumerable<string> Texts(string reference) =>
        TokenizerParityTests.ReferenceCases(reference).Select(c => c!["text"]!.GetValue<string>()).Concat(SpaceCases);

    [Theory]
    [MemberData(nameof(Folders))]
    public void Class_pipeline_equals_the_file_on_the_text_without_its_first_space(string folder, string scheme)
    {
        var cls = Auto(folder);
        var file = TokenizerParityTests.Load(folder);
        string reference = folder.EndsWith("llama2", StringComparison.Ordinal) ? "llama2" : "llama-tiny";
        var failures = new List<string>();
        int checkedCount = 0;
        // " " alone is the one exception (the class keeps its "▁"; the file has nothing to prepend to in ""): see below
        foreach (var text in Texts(reference).Where(t => t != " " && !t.Contains("<s>", StringComparison.Ordinal) && !t.Contains("</s>", StringComparison.Ordinal)))
        {
            string equivalent = text.StartsWith(' ') ? text[1..] : text;
            var got = cls.EncodeWithOffsets(text, addSpecialTokens: false);
            var want = file.EncodeWithOffsets(equivalent, addSpecialTokens: false);
            checkedCount++;
            if (!got.Ids.SequenceEqual(want.Ids) || !got.Tokens.SequenceEqual(want.Tokens))
                failures.Add($"{Show(text)} ({scheme}): [{string.Join("|", got.Tokens)}] vs the file on {Show(equivalent)}: [{string.Join("|", want.Tokens)}]");
            if (!cls.Encode(text).SequenceEqual(new[] { cls.BosTokenId!.Value }.Concat(want.Ids)))
                failures.Add($"{Show(text)}: with special tokens is not <s> + the ids");
        }
        Assert.True(checkedCount > 40, $"only {checkedCount} texts checked");
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(10)));
    }

    [Theory]
    [MemberData(nameof(FolderNames))]
    public void Leading_space_gives_one_metaspace_not_two(string folder)
    {
        var cls = Auto(folder);
        var file = TokenizerParityTests.Load(folder);
        Assert.Equal("\u2581\u2581x", string.Concat(file.Tokenize(" x"))); // the file prepends to a text already starting with a space
        Assert.Equal("\u2581x", string.Concat(cls.Tokenize(" x")));           // both schemes: not again
        Assert.Equal("\u2581\u2581\u2581", string.Concat(cls.Tokenize("   ")));
        Assert.Equal("\u2581", string.Concat(cls.Tokenize(" ")));
        Assert.Empty(file.Tokenize(""));
        Assert.Equal("\u2581a\u2581\u2581b", string.Concat(cls.Tokenize("a  b")));
        Assert.Empty(cls.Encode("", addSpecialTokens: false));
        Assert.Equal([cls.BosTokenId!.Value], cls.Encode(""));
    }

    [Theory]
    [MemberData(nameof(Folders))]
    public void Text_after_a_special_token_gets_a_metaspace_only_with_the_always_scheme(string folder, string scheme)
    {
        var cls = Auto(folder);
        var tokens = cls.Tokenize("<s>glued");
        Assert.Equal("<s>", tokens[0]);
        Assert.Equal(scheme == "always", tokens[1].StartsWith('\u2581'));
        var spaced = cls.Tokenize("<s> spaced");
        Assert.Equal("<s>", spaced[0]);
        Assert.StartsWith("\u2581spaced"[..2], spaced[1], StringComparison.Ordinal); // the space itself becomes the "▁", never two
        Assert.False(spaced[1].StartsWith("\u2581\u2581", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(FolderNames))]
    public void Decode_strips_the_one_prefix_space_and_keeps_the_others(string folder)
    {
        var cls = Auto(folder);
        Assert.Equal("leading space", cls.Decode(cls.Encode(" leading space", addSpecialTokens: false)));
        Assert.Equal(" two", cls.Decode(cls.Encode("  two", addSpecialTokens: false)));
        Assert.Equal("hello  world", cls.Decode(cls.Encode("hello  world", addSpecialTokens: false)));
        Assert.Equal("", cls.Decode(cls.Encode("", addSpecialTokens: false)));
    }

    [Fact]
    public void Add_prefix_space_false_prepends_nothing()
    {
        using var tmp = new TempDir();
        var src = Path.Combine(TokenizerParityTests.FixturesDir, "hf/models/llama-tiny");
        File.Copy(Path.Combine(src, "tokenizer.json"), tmp.File("tokenizer.json"));
        File.WriteAllText(tmp.File("tokenizer_config.json"), """{"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_prefix_space": false}""");
        var tok = AutoTokenizer.FromPretrained(tmp.Path);
        Assert.False(tok.Tokenize("hello")[0].StartsWith('\u2581'));
        Assert.Equal("\u2581hello", string.Concat(tok.Tokenize(" hello")));
        Assert.Equal(" hello", tok.Decode(tok.Encode(" hello", addSpecialTokens: false)));
    }

    private static string Show(string s) => "\"" + s.Replace("\n", "\\n", StringComparison.Ordinal) + "\"";
}
