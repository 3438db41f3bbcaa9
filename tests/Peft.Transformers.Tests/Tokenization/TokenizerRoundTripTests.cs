using System.Text.Json;
using Peft.Testing;
using Peft.Transformers;

namespace Peft.Transformers.Tests.Tokenization;

/// <summary>Properties that hold for HF tokenizers on any text, checked on quotes the reference cases do not contain.</summary>
public class TokenizerRoundTripTests
{
    private static readonly string[] Quotes = File.ReadLines(Fixtures.Data("quotes.jsonl"))
        .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("quote").GetString()!)
        .Where((_, i) => i % 7 == 0).Take(1500).ToArray();

    [Theory]
    [InlineData("hf/models/gpt2-tiny")]
    [InlineData("hf/models/qwen2-tiny")]
    [InlineData("tokenizers/llama3")]
    [InlineData("tokenizers/qwen3")]
    public void ByteLevelDecodeOfEncodeIsTheText(string folder)
    {
        // Byte-level BPE is lossless: HF's decode(encode(x)) == x (the quotes are already NFC).
        var tok = TokenizerParityTests.Load(folder);
        var bad = Quotes.Where(q => tok.Decode(tok.Encode(q, false), cleanUpTokenizationSpaces: false) != q).Take(5).ToList();
        Assert.True(bad.Count == 0, "round trip failed for: " + string.Join(" | ", bad));
    }

    [Theory]
    [InlineData("hf/models/gpt2-tiny")]
    [InlineData("hf/models/llama-tiny")]
    [InlineData("hf/models/bert-tiny")]
    [InlineData("tokenizers/llama2")]
    [InlineData("tokenizers/llama3")]
    [InlineData("tokenizers/qwen3")]
    public void OffsetsAreOrderedAndInsideTheText(string folder)
    {
        var tok = TokenizerParityTests.Load(folder);
        foreach (var q in Quotes)
        {
            var e = tok.EncodeWithOffsets(q, false);
            int prevStart = 0;
            for (int i = 0; i < e.Count; i++)
            {
                var (s, t) = e.Offsets[i];
                Assert.InRange(s, prevStart, q.Length);
                Assert.InRange(t, s, q.Length);
                prevStart = s;
            }
            Assert.Equal(e.Ids, tok.Encode(q, false));
        }
    }

    public static TheoryData<string> AllFolders => new()
    {
        "hf/models/gpt2-tiny", "hf/models/opt-tiny", "hf/models/qwen2-tiny", "hf/models/llama-tiny", "hf/models/bert-tiny",
        "tokenizers/llama2", "tokenizers/llama3", "tokenizers/qwen3",
    };

    private static readonly string[] Adversarial =
    [
        "\u0000nul and \u0001 control", new string('a', 5000), string.Concat(Enumerable.Repeat("ab ", 2000)),
        "e\u0301 decomposed, \u1100\u1161\u11A8 jamo, \uAC01 syllable", "\U00020000\U0002A6D6 ext-B, \U0001D400\U0001D7CF math",
        "\U0001F468\u200D\U0001F469\u200D\U0001F467 zwj family, flags \U0001F1FA\U0001F1F8", "\u05E9\u05DC\u05D5\u05DD rtl \u0645\u0631\u062D\u0628\u0627",
        "\r\n\r\n\t \u3000 \u2028 \u00A0\u2009 mixed spaces", "\uFFFD replacement \uFEFF bom",
        "<s><s></s>[CLS][SEP]<|endoftext|><|im_start|><|begin_of_text|>", "İstanbul ǅ ß ﬁ Ⅻ ½ ²", "   \n   ", "'s 'S 'll 'LL ſ K",
    ];

    [Theory]
    [MemberData(nameof(AllFolders))]
    public void AdversarialInputsEncodeWithValidOffsets(string folder)
    {
        var tok = TokenizerParityTests.Load(folder);
        foreach (var text in Adversarial)
        {
            var e = tok.EncodeWithOffsets(text);
            Assert.Equal(e.Count, e.Offsets.Count);
            Assert.All(e.Offsets, o => { Assert.InRange(o.Start, 0, text.Length); Assert.InRange(o.End, o.Start, text.Length); });
            Assert.All(e.Ids, id => Assert.NotNull(tok.ConvertIdsToTokens([id])[0]));
            Assert.NotNull(tok.Decode(e.Ids, skipSpecialTokens: true));
        }
        var ex = Assert.Throws<ArgumentException>(() => tok.Encode("lone \uD800 high surrogate"));
        Assert.Contains("unpaired surrogate U+D800 at index 5", ex.Message);
    }
}
