using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Peft.Samples;

/// <summary>
/// Trains a word-level tokenizer on the sample's own text and writes it as a real <c>tokenizer.json</c> +
/// <c>tokenizer_config.json</c> (the shape <c>tokenizers.models.WordLevel</c> + <c>WordLevelTrainer</c> save in Python), so
/// <c>AutoTokenizer.FromPretrained</c> loads it like any Hugging Face folder and nothing comes from the Hub.
/// Words and punctuation runs are split as HF's <c>Whitespace</c> pre-tokenizer does (<c>\w+|[^\w\s]+</c>); the
/// <c>vocabSize - 3</c> most frequent pieces get ids, the rest map to <c>&lt;unk&gt;</c>. One token per word lets a
/// model of a few hundred thousand parameters, trained for seconds on a CPU, write real words in a plausible order,
/// where a byte-level model of that size still spells letter soup.
/// </summary>
public static class WordLevelTokenizer
{
    /// <summary>Id of &lt;/s&gt; (BOS and EOS, as OPT).</summary>
    public const int EosId = 0;

    /// <summary>Id of &lt;pad&gt;.</summary>
    public const int PadId = 1;

    /// <summary>Id of &lt;unk&gt;.</summary>
    public const int UnkId = 2;

    /// <summary>HF's <c>Whitespace</c> pre-tokenizer pattern.</summary>
    private static readonly Regex Piece = new(@"\w+|[^\w\s]+", RegexOptions.Compiled);

    /// <summary>
    /// Counts the pieces of <paramref name="texts"/>, keeps the most frequent (ties by ordinal order, so the vocabulary is
    /// the same on every run) and writes the two files into <paramref name="dir"/>. Returns the vocabulary size.
    /// </summary>
    public static int Train(IEnumerable<string> texts, int vocabSize, string dir)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var text in texts)
            foreach (Match m in Piece.Matches(text))
                counts[m.Value] = counts.GetValueOrDefault(m.Value) + 1;
        var vocab = new JsonObject { ["</s>"] = EosId, ["<pad>"] = PadId, ["<unk>"] = UnkId };
        foreach (var word in counts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal)
                     .Take(vocabSize - vocab.Count).Select(kv => kv.Key))
            vocab[word] = vocab.Count;
        Write(dir, vocab);
        return vocab.Count;
    }

    private static void Write(string dir, JsonObject vocab)
    {
        Directory.CreateDirectory(dir);
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(TokenizerJsonParts.Special(EosId, "</s>"), TokenizerJsonParts.Special(PadId, "<pad>"), TokenizerJsonParts.Special(UnkId, "<unk>")),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "Whitespace" },
            ["post_processor"] = TokenizerJsonParts.OptStylePostProcessor(EosId),
            // Joins words with spaces; clean_up_tokenization_spaces below then removes those before punctuation.
            ["decoder"] = new JsonObject { ["type"] = "WordPiece", ["prefix"] = "##", ["cleanup"] = true },
            ["model"] = new JsonObject { ["type"] = "WordLevel", ["vocab"] = vocab, ["unk_token"] = "<unk>" },
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tokenizer.ToJsonString());
        var config = new JsonObject
        {
            ["tokenizer_class"] = "PreTrainedTokenizerFast", ["bos_token"] = "</s>", ["eos_token"] = "</s>", ["pad_token"] = "<pad>",
            ["unk_token"] = "<unk>", ["model_max_length"] = 256, ["padding_side"] = "right", ["clean_up_tokenization_spaces"] = true,
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
    }
}
