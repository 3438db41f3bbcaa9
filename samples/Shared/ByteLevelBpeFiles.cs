using System.Text.Json.Nodes;

namespace Peft.Samples;

/// <summary>
/// Writes a byte-level BPE tokenizer (GPT-2's byte-to-unicode alphabet, no merges: one token per UTF-8 byte, plus
/// <c>&lt;/s&gt;</c> and <c>&lt;pad&gt;</c>) as a real <c>tokenizer.json</c> + <c>tokenizer_config.json</c>, so the sample
/// needs nothing from the Hub. <c>AutoTokenizer.FromPretrained</c> then loads it like any Hugging Face folder.
/// (The same files as QuickStart's tokenizer, shared by the LoraCausalLm and QLora samples.)
/// </summary>
public static class ByteLevelBpeFiles
{
    /// <summary>Id of &lt;/s&gt; (BOS and EOS).</summary>
    public const int EosId = 256;

    /// <summary>Id of &lt;pad&gt;.</summary>
    public const int PadId = 257;

    /// <summary>Vocabulary size.</summary>
    public const int VocabSize = 258;

    /// <summary>Writes the two files into <paramref name="dir"/>.</summary>
    public static void Write(string dir)
    {
        Directory.CreateDirectory(dir);
        var vocab = new JsonObject();
        foreach (var (b, ch) in ByteAlphabet())
        {
            vocab[ch.ToString()] = b;
        }
        JsonObject ByteLevel() => new() { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true };
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(TokenizerJsonParts.Special(EosId, "</s>"), TokenizerJsonParts.Special(PadId, "<pad>")),
            ["normalizer"] = null,
            ["pre_tokenizer"] = ByteLevel(),
            ["post_processor"] = TokenizerJsonParts.OptStylePostProcessor(EosId),
            ["decoder"] = ByteLevel(),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocab, ["merges"] = new JsonArray(),
            },
        };
        WriteAtomic(Path.Combine(dir, "tokenizer.json"), tokenizer.ToJsonString());
        var config = new JsonObject
        {
            ["tokenizer_class"] = "GPT2Tokenizer", ["bos_token"] = "</s>", ["eos_token"] = "</s>", ["pad_token"] = "<pad>",
            ["model_max_length"] = 256, ["padding_side"] = "right",
        };
        WriteAtomic(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
    }

    private static void WriteAtomic(string path, string text)
    {
        File.WriteAllText(path + ".tmp", text);
        File.Move(path + ".tmp", path, overwrite: true);
    }

    // GPT-2's reversible byte -> printable character table (printable Latin-1 bytes map to themselves, the rest
    // to code points from 256 up), which tokenizer.json's ByteLevel pieces expect.
    private static IEnumerable<(int Byte, char Char)> ByteAlphabet()
    {
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            yield return (b, printable ? (char)b : (char)(256 + extra++));
        }
    }
}
