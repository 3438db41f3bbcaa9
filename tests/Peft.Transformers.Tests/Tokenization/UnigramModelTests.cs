using System.Text.Json.Nodes;
using Peft.Testing;
using Peft.Transformers;

namespace Peft.Transformers.Tests.Tokenization;

/// <summary>
/// The Unigram model has no HF fixture here, so it is checked against an independent oracle: an exhaustive search over
/// every segmentation (vocabulary pieces, or one unknown character at min score - 10 where no one-character piece
/// exists), with scores chosen so that no two segmentations tie.
/// </summary>
public class UnigramModelTests
{
    private static readonly (string Piece, double Score)[] Vocab =
    [
        ("<unk>", 0), ("a", -2.1), ("b", -2.9), ("c", -3.7), ("ab", -3.3), ("bc", -4.45), ("abc", -5.05), ("ca", -4.8),
        ("cab", -6.15), ("<0x78>", -20.5),
    ];

    private static PreTrainedTokenizer Build(TempDir tmp, bool byteFallback)
    {
        var vocab = new JsonArray(Vocab.Select(v => (JsonNode)new JsonArray(v.Piece, v.Score)).ToArray());
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(new JsonObject
            {
                ["id"] = 0, ["content"] = "<unk>", ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            }),
            ["normalizer"] = null,
            ["pre_tokenizer"] = null,
            ["post_processor"] = null,
            ["decoder"] = null,
            ["model"] = new JsonObject { ["type"] = "Unigram", ["unk_id"] = 0, ["vocab"] = vocab, ["byte_fallback"] = byteFallback },
        };
        File.WriteAllText(Path.Combine(tmp.Path, "tokenizer.json"), json.ToJsonString());
        return AutoTokenizer.FromPretrained(tmp.Path);
    }

    private static List<int> Oracle(string text)
    {
        var ids = Vocab.Select((v, i) => (v.Piece, i)).ToDictionary(x => x.Piece, x => x.i);
        double unkScore = Vocab.Min(v => v.Score) - 10;
        double best = double.NegativeInfinity;
        List<int> bestPath = [];
        void Walk(int pos, double score, List<int> path)
        {
            if (pos == text.Length)
            {
                if (score > best) { best = score; bestPath = [.. path]; }
                return;
            }
            for (int len = 1; pos + len <= text.Length; len++)
                if (ids.TryGetValue(text.Substring(pos, len), out int id) && id != 0)
                {
                    path.Add(id);
                    Walk(pos + len, score + Vocab[id].Score, path);
                    path.RemoveAt(path.Count - 1);
                }
            if (!ids.ContainsKey(text.Substring(pos, 1)))
            {
                path.Add(0);
                Walk(pos + 1, score + unkScore, path);
                path.RemoveAt(path.Count - 1);
            }
        }
        Walk(0, 0, []);
        // Consecutive unknown characters come out as one unknown token.
        return bestPath.Where((id, i) => !(id == 0 && i > 0 && bestPath[i - 1] == 0)).ToList();
    }

    [Fact]
    public void ViterbiMatchesExhaustiveSearch()
    {
        using var tmp = new TempDir();
        var tok = Build(tmp, byteFallback: false);
        var alphabet = "abcx";
        int checkedCount = 0;
        for (int len = 1; len <= 6; len++)
        {
            int total = (int)Math.Pow(alphabet.Length, len);
            for (int k = 0; k < total; k++)
            {
                var chars = new char[len];
                for (int i = 0, v = k; i < len; i++, v /= alphabet.Length) chars[i] = alphabet[v % alphabet.Length];
                string text = new(chars);
                Assert.Equal(Oracle(text), tok.Encode(text));
                checkedCount++;
            }
        }
        Assert.True(checkedCount > 5000);
        var enc = tok.EncodeWithOffsets("abxxc");
        Assert.Equal("xx", enc.Tokens[1]); // HF keeps the unknown text as the token string
        Assert.Equal((2, 4), enc.Offsets[1]);
    }

    [Fact]
    public void ByteFallbackReplacesUnknownPieces()
    {
        using var tmp = new TempDir();
        var tok = Build(tmp, byteFallback: true);
        int byteX = tok.ConvertTokenToId("<0x78>")!.Value;
        var noFallback = Oracle("abxxc");
        var expected = noFallback.SelectMany(id => id == 0 ? new[] { byteX, byteX } : new[] { id }).ToList();
        Assert.Equal(expected, tok.Encode("abxxc"));
    }
}
