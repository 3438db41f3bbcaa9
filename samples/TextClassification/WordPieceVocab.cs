using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace TextClassification;

/// <summary>
/// Builds a BERT WordPiece vocabulary from a training corpus and writes it as a real Hugging Face tokenizer folder
/// (<c>vocab.txt</c> + <c>tokenizer_config.json</c>, as <c>bert-base-uncased</c> ships them), so the sample needs
/// nothing from the Hub. <c>AutoTokenizer.FromPretrained(dir)</c> then loads it with BertNormalizer (lower case, accents
/// stripped), BertPreTokenizer, WordPiece and the <c>[CLS] A [SEP]</c> template, exactly like a downloaded BERT.
/// </summary>
/// <remarks>
/// The vocabulary is: the five special tokens, every character of the corpus twice (<c>c</c> and <c>##c</c>, so any
/// word still tokenizes, character by character), then every word seen at least <c>minCount</c> times, most frequent
/// first. Words are cut the way BERT's pre-tokenizer cuts them (whitespace, then each punctuation character alone).
/// </remarks>
public static class WordPieceVocab
{
    /// <summary>The special tokens, at ids 0..4 (HF BertTokenizer's names).</summary>
    public static readonly string[] Specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

    /// <summary>Writes <c>vocab.txt</c> and <c>tokenizer_config.json</c> into <paramref name="dir"/>; returns the vocabulary size.</summary>
    public static int Write(string dir, IEnumerable<string> corpus, int minCount = 2, int maxLength = 128)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var chars = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var text in corpus)
        {
            foreach (var word in Words(text))
            {
                counts[word] = counts.GetValueOrDefault(word) + 1;
                var e = StringInfo.GetTextElementEnumerator(word);
                while (e.MoveNext()) chars.Add((string)e.Current);
            }
        }
        var vocab = new List<string>(Specials);
        vocab.AddRange(chars);
        vocab.AddRange(chars.Select(c => "##" + c));
        var seen = new HashSet<string>(vocab, StringComparer.Ordinal);
        vocab.AddRange(counts.Where(kv => kv.Value >= minCount && seen.Add(kv.Key))
                             .OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key));

        Directory.CreateDirectory(dir);
        WriteAtomic(Path.Combine(dir, "vocab.txt"), string.Join('\n', vocab) + "\n");
        var config = new JsonObject
        {
            ["tokenizer_class"] = "BertTokenizer", ["do_lower_case"] = true, ["unk_token"] = "[UNK]", ["sep_token"] = "[SEP]",
            ["pad_token"] = "[PAD]", ["cls_token"] = "[CLS]", ["mask_token"] = "[MASK]", ["model_max_length"] = maxLength,
        };
        WriteAtomic(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
        return vocab.Count;
    }

    // BERT's basic tokenization: lower case, accents stripped (NFD without combining marks), split on whitespace and
    // around every punctuation / symbol character.
    private static IEnumerable<string> Words(string text)
    {
        var decomposed = text.ToLowerInvariant().Normalize(NormalizationForm.FormD);
        var word = new StringBuilder();
        foreach (char c in decomposed)
        {
            var cat = char.GetUnicodeCategory(c);
            if (cat == UnicodeCategory.NonSpacingMark || char.IsControl(c)) continue;
            if (char.IsWhiteSpace(c) || IsPunctuation(c))
            {
                if (word.Length > 0) { yield return word.ToString(); word.Clear(); }
                if (!char.IsWhiteSpace(c)) yield return c.ToString();
            }
            else word.Append(c);
        }
        if (word.Length > 0) yield return word.ToString();
    }

    // BERT's _is_punctuation: every non-alphanumeric printable ASCII character, and Unicode punctuation.
    private static bool IsPunctuation(char c) =>
        c is >= '!' and <= '/' or >= ':' and <= '@' or >= '[' and <= '`' or >= '{' and <= '~' || char.IsPunctuation(c);

    private static void WriteAtomic(string path, string text)
    {
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }
}
