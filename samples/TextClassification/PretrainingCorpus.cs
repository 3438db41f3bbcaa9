using Peft.Datasets;

namespace TextClassification;

/// <summary>
/// The unlabelled masked-LM pre-training corpus: the quotes of <c>quotes.jsonl</c> (loaded as HF's
/// <c>load_dataset("json", ...)</c>) without any quote of the evaluation split. <c>quotes.jsonl</c> holds the labelled
/// quotes as well, some of them twice or inside a longer entry, so a quote is left out when, compared on lower-case
/// letters and digits only, it contains a held-out text or is contained in one.
/// </summary>
public static class PretrainingCorpus
{
    /// <summary>The kept quotes (column <c>quote</c>, with the file's other columns) and how many were left out.</summary>
    /// <param name="path">A JSON Lines file with a string column <c>quote</c>.</param>
    /// <param name="heldOut">Texts that must not be pre-trained on (the test split).</param>
    /// <exception cref="InvalidDataException">The file has no <c>quote</c> column.</exception>
    public static (Dataset Quotes, int Kept, int LeftOut) Load(string path, IEnumerable<string> heldOut)
    {
        ArgumentNullException.ThrowIfNull(heldOut);
        var all = DatasetLoader.LoadDataset("json", new Dictionary<string, string> { ["train"] = path })["train"];
        if (!all.ColumnNames.Contains("quote"))
            throw new InvalidDataException($"{path}: no 'quote' column (columns: {string.Join(", ", all.ColumnNames)})");
        var held = heldOut.Select(Key).Where(k => k.Length > 0).Distinct().ToArray();
        var kept = all.Filter(row => !Leaks(Key(row["quote"] as string ?? ""), held));
        return (kept, kept.NumRows, all.NumRows - kept.NumRows);
    }

    /// <summary>Whether <paramref name="key"/> contains a held-out key or lies inside one.</summary>
    public static bool Leaks(string key, IReadOnlyList<string> heldKeys)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(heldKeys);
        if (key.Length == 0) return false;
        foreach (var h in heldKeys)
        {
            if (key.Contains(h, StringComparison.Ordinal) || h.Contains(key, StringComparison.Ordinal)) return true;
        }
        return false;
    }

    /// <summary>The comparison key of a text: its letters and digits, lower case.</summary>
    public static string Key(string text) => string.Concat((text ?? "").ToLowerInvariant().Where(char.IsLetterOrDigit));
}
