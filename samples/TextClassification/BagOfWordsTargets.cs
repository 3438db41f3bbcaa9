using System.Collections;
using Peft.Datasets;
using Peft.Transformers;

namespace TextClassification;

/// <summary>
/// A sentence-level pre-training task built from unlabelled text: from the <c>[CLS]</c> position, predict which of the
/// corpus's most frequent content words occur in the text (multi-label classification, one sigmoid per word).
/// </summary>
/// <remarks>
/// Masked-LM trains only the masked positions, so the <c>[CLS]</c> vector and the pooler that HF's
/// <c>BertForSequenceClassification</c> classifies are never trained by it and carry almost nothing about the input.
/// BERT's own pre-training adds next-sentence prediction for them; on these short quotes NSP stays at chance (loss
/// 0.693 after two epochs), while this task trains <c>[CLS]</c> + pooler to summarise what a text talks about --
/// the summary a topic classifier (full or LoRA) then reads. It uses the texts only, never the topic labels.
/// </remarks>
public static class BagOfWordsTargets
{
    /// <summary>
    /// The <paramref name="size"/> most frequent words of <paramref name="texts"/> (by number of texts holding them,
    /// whole-word WordPiece tokens of three letters or more, after skipping the <paramref name="skipMostFrequent"/>
    /// most frequent ones: "the", "and", ...) and a dataset with columns "text" and "label" (float[size]: 1 where
    /// the word occurs).
    /// </summary>
    public static (IReadOnlyList<string> Words, Dataset Data) Build(IReadOnlyList<string> texts, PreTrainedTokenizer tokenizer,
        int size = 256, int skipMostFrequent = 30)
    {
        var wordsPerText = texts.Select(t => tokenizer.Tokenize(t).Where(w => w.Length >= 3 && w.All(char.IsLetter)).ToHashSet(StringComparer.Ordinal)).ToList();
        var words = wordsPerText.SelectMany(s => s).GroupBy(w => w, StringComparer.Ordinal)
            .OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
            .Skip(skipMostFrequent).Take(size).Select(g => g.Key).ToList();
        var index = words.Select((w, i) => (w, i)).ToDictionary(p => p.w, p => p.i, StringComparer.Ordinal);
        var labels = new List<float[]>(texts.Count);
        foreach (var present in wordsPerText)
        {
            var row = new float[words.Count];
            foreach (var w in present)
            {
                if (index.TryGetValue(w, out int i)) row[i] = 1f;
            }
            labels.Add(row);
        }
        return (words, Dataset.FromDict(new Dictionary<string, IList> { ["text"] = texts.ToList(), ["label"] = labels }));
    }
}
