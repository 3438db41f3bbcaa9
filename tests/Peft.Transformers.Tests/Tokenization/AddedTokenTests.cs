using System.Text.Json.Nodes;
using Peft.Testing;
using Peft.Transformers;

namespace Peft.Transformers.Tests.Tokenization;

/// <summary>Added-token options (lstrip, rstrip, single_word) on gpt2-tiny with one extra token, checked against
/// the same tokenizer without it (HF semantics: the token is cut out first, the rest is encoded as usual).</summary>
public class AddedTokenTests
{
    private static (PreTrainedTokenizer With, PreTrainedTokenizer Plain, int MaskId) Build(TempDir tmp, bool lstrip, bool rstrip, bool singleWord)
    {
        var plain = TokenizerParityTests.Load("hf/models/gpt2-tiny");
        var json = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Model("gpt2-tiny"), "tokenizer.json")))!;
        int maskId = plain.Count;
        ((JsonArray)json["added_tokens"]!).Add(new JsonObject
        {
            ["id"] = maskId, ["content"] = "<mask>", ["single_word"] = singleWord, ["lstrip"] = lstrip, ["rstrip"] = rstrip,
            ["normalized"] = false, ["special"] = true,
        });
        File.WriteAllText(Path.Combine(tmp.Path, "tokenizer.json"), json.ToJsonString());
        return (AutoTokenizer.FromPretrained(tmp.Path), plain, maskId);
    }

    [Fact]
    public void PlainAddedTokenSplitsTheTextAndKeepsSpaces()
    {
        using var tmp = new TempDir();
        var (tok, plain, mask) = Build(tmp, false, false, false);
        Assert.Equal(plain.Encode("hello ").Append(mask).Concat(plain.Encode(" world")), tok.Encode("hello <mask> world"));
        var enc = tok.EncodeWithOffsets("hello <mask> world");
        int i = enc.Ids.ToList().IndexOf(mask);
        Assert.Equal((6, 12), enc.Offsets[i]);
        Assert.Equal("hello  world", tok.Decode(tok.Encode("hello <mask> world"), skipSpecialTokens: true));
        Assert.Equal(tok.Count, plain.Count + 1);
    }

    [Fact]
    public void LStripAndRStripAbsorbTheWhitespace()
    {
        using var tmp1 = new TempDir();
        var (l, plain, mask) = Build(tmp1, lstrip: true, rstrip: false, singleWord: false);
        Assert.Equal(plain.Encode("hello").Append(mask).Concat(plain.Encode(" world")), l.Encode("hello  <mask> world"));
        var enc = l.EncodeWithOffsets("hello  <mask> world");
        Assert.Equal((5, 13), enc.Offsets[enc.Ids.ToList().IndexOf(mask)]);

        using var tmp2 = new TempDir();
        var (r, _, _) = Build(tmp2, lstrip: false, rstrip: true, singleWord: false);
        Assert.Equal(plain.Encode("hello ").Append(mask).Concat(plain.Encode("world")), r.Encode("hello <mask>  world"));
    }

    [Fact]
    public void SingleWordOnlyMatchesBetweenNonWordCharacters()
    {
        using var tmp = new TempDir();
        var (tok, plain, mask) = Build(tmp, false, false, singleWord: true);
        Assert.Equal(plain.Encode("a<mask>b"), tok.Encode("a<mask>b"));
        Assert.Equal(plain.Encode("a ").Append(mask).Concat(plain.Encode(" b")), tok.Encode("a <mask> b"));
        Assert.Equal(plain.Encode("(").Append(mask).Concat(plain.Encode(")")), tok.Encode("(<mask>)"));
    }
}

/// <summary>HF add_tokens / add_special_tokens.</summary>
public class AddTokensTests
{
    [Fact]
    public void AddedSpecialTokenGetsNextIdIsMatchedAndSurvivesSave()
    {
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("gpt2-tiny"));
        var plain = TokenizerParityTests.Load("hf/models/gpt2-tiny");
        int before = tok.Count;
        Assert.Equal(1, tok.AddTokens(["<pad>", "<pad>"], specialTokens: true));
        Assert.Equal(0, tok.AddTokens(["<pad>"], specialTokens: true));
        Assert.Equal(before + 1, tok.Count);
        tok.PadToken = "<pad>";
        Assert.Equal(before, tok.PadTokenId);
        Assert.Equal(plain.Encode("a ").Append(before).Concat(plain.Encode(" b")), tok.Encode("a <pad> b"));
        Assert.Equal(plain.Decode(plain.Encode("a  b")), tok.Decode(tok.Encode("a <pad> b"), skipSpecialTokens: true));
        using var tmp = new TempDir();
        tok.SavePretrained(tmp.Path);
        var again = AutoTokenizer.FromPretrained(tmp.Path);
        Assert.Equal(before, again.PadTokenId);
        Assert.Equal(tok.Encode("a <pad> b"), again.Encode("a <pad> b"));
    }
}

/// <summary>transformers' Llama add_bos_token / add_eos_token switches.</summary>
public class BosEosSwitchTests
{
    [Theory]
    [InlineData("hf/models/llama-tiny", "llama-tiny")]
    [InlineData("tokenizers/llama2", "llama2")]
    public void AddEosAndBosRebuildTheTemplate(string folder, string reference)
    {
        var tok = AutoTokenizer.FromTokenizerFile(Path.Combine(TokenizerParityTests.FixturesDir, folder)); // the references are tokenizers' output
        Assert.True(tok.AddBosToken);
        var cases = TokenizerParityTests.ReferenceCases(reference).Take(8).Select(c => (
            Text: c!["text"]!.GetValue<string>(),
            With: c["with_special"]!["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray(),
            Without: c["no_special"]!["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray())).ToArray();
        int eos = tok.EosTokenId!.Value;
        tok.AddEosToken = true;
        foreach (var c in cases) Assert.Equal(c.With.Append(eos), tok.Encode(c.Text));
        using var tmp = new TempDir();
        tok.SavePretrained(tmp.Path);
        var again = AutoTokenizer.FromTokenizerFile(tmp.Path);
        Assert.True(again.AddEosToken);
        foreach (var c in cases) Assert.Equal(c.With.Append(eos), again.Encode(c.Text));
        tok.AddBosToken = false;
        tok.AddEosToken = false;
        foreach (var c in cases) Assert.Equal(c.Without, tok.Encode(c.Text));
        foreach (var c in cases) Assert.Equal(c.Without, tok.Encode(c.Text, addSpecialTokens: false));
    }
}
