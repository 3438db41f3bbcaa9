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
}
