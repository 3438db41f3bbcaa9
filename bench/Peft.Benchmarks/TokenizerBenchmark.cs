using System.Text.Json;
using Peft.Transformers;

namespace Peft.Benchmarks;

/// <summary>
/// Encodes ~10,000 quotes with each tokenizer folder: batch (parallel) and one-by-one, reporting medians and tokens/s.
/// Inputs come from environment variables (the bench never reads ../shared itself):
/// <c>PEFT_QUOTES</c> = path of quotes.jsonl (one {"quote": ...} per line),
/// <c>PEFT_TOKENIZERS</c> = tokenizer folders separated by ';' (e.g. the tiny models and the real Llama/Qwen files).
/// </summary>
public sealed class TokenizerBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "tokenizer";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        string? quotesPath = Environment.GetEnvironmentVariable("PEFT_QUOTES");
        string? dirs = Environment.GetEnvironmentVariable("PEFT_TOKENIZERS");
        if (quotesPath is null || dirs is null)
        {
            report(new Dictionary<string, object?> { ["skipped"] = "set PEFT_QUOTES (quotes.jsonl) and PEFT_TOKENIZERS (folders separated by ';')" });
            return;
        }
        int n = options.Quick ? 1_000 : 10_000;
        var quotes = File.ReadLines(quotesPath)
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("quote").GetString() ?? "")
            .Take(n).ToArray();
        long chars = quotes.Sum(q => (long)q.Length);
        foreach (var dir in dirs.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var tok = AutoTokenizer.FromPretrained(dir);
            double load = sw.Elapsed.TotalSeconds;
            long tokens = 0;
            double batch = Timing.MedianSeconds(() =>
            {
                var be = tok.EncodeBatch(quotes, truncation: false);
                tokens = be.InputIdsList.Sum(r => (long)r.Length);
            }, options.Repeats);
            double sequential = Timing.MedianSeconds(() =>
            {
                foreach (var q in quotes) tok.Encode(q);
            }, Math.Max(1, options.Repeats / 2));
            double decode = Timing.MedianSeconds(() =>
            {
                foreach (var q in quotes.Take(1000)) tok.Decode(tok.Encode(q), skipSpecialTokens: true);
            }, Math.Max(1, options.Repeats / 2));
            report(new Dictionary<string, object?>
            {
                ["tokenizer"] = Path.GetFileName(Path.TrimEndingDirectorySeparator(dir)),
                ["texts"] = quotes.Length,
                ["chars"] = chars,
                ["tokens"] = tokens,
                ["load_s"] = Math.Round(load, 4),
                ["encode_batch_s"] = Math.Round(batch, 4),
                ["encode_sequential_s"] = Math.Round(sequential, 4),
                ["tokens_per_s_batch"] = Math.Round(tokens / batch),
                ["encode_decode_1000_s"] = Math.Round(decode, 4),
                ["threads"] = Environment.ProcessorCount,
            });
        }
    }
}
