namespace Peft.Transformers.Tokenization.Pipeline;

/// <summary>HF tokenizers' truncate_encodings and Encoding::truncate (with stride / overflowing windows). Ours.</summary>
internal static class Truncation
{
    public static void Truncate(RawEncoding a, RawEncoding? b, int maxLength, TruncationStrategy strategy, int stride, TruncationSide side)
    {
        if (maxLength < 0) maxLength = 0;
        int total = a.Count + (b?.Count ?? 0);
        if (total <= maxLength) return;
        int toRemove = total - maxLength;
        if (maxLength == 0)
        {
            TruncateOne(a, 0, stride, side);
            if (b is not null) TruncateOne(b, 0, stride, side);
            return;
        }
        if (b is null)
        {
            if (strategy == TruncationStrategy.OnlySecond)
                throw new InvalidOperationException("Truncation 'only_second' needs a pair of sequences");
            TruncateOne(a, maxLength, stride, side);
            return;
        }
        switch (strategy)
        {
            case TruncationStrategy.LongestFirst:
                {
                    // HF truncate_encodings: keep the shorter one whole when possible, else split max_length evenly.
                    int n1 = a.Count, n2 = b.Count;
                    bool swap = n1 > n2;
                    if (swap) (n1, n2) = (n2, n1);
                    n2 = n1 > maxLength ? n1 : Math.Max(n1, maxLength - n1);
                    if (n1 + n2 > maxLength)
                    {
                        n1 = maxLength / 2;
                        n2 = n1 + maxLength % 2;
                    }
                    if (swap) (n1, n2) = (n2, n1);
                    TruncateOne(a, n1, stride, side);
                    TruncateOne(b, n2, stride, side);
                    break;
                }
            case TruncationStrategy.OnlyFirst:
            case TruncationStrategy.OnlySecond:
                {
                    var target = strategy == TruncationStrategy.OnlyFirst ? a : b;
                    if (target.Count <= toRemove)
                        throw new InvalidOperationException(
                            $"Truncation error: the {(strategy == TruncationStrategy.OnlyFirst ? "first" : "second")} sequence ({target.Count} tokens) is too short to remove {toRemove} tokens and respect max_length {maxLength}");
                    TruncateOne(target, target.Count - toRemove, stride, side);
                    break;
                }
        }
    }

    /// <summary>Keeps the first window of <paramref name="maxLen"/> tokens; later windows (overlapping by
    /// <paramref name="stride"/>) go to Overflowing.</summary>
    public static void TruncateOne(RawEncoding e, int maxLen, int stride, TruncationSide side)
    {
        int len = e.Count;
        if (maxLen >= len) return;
        if (maxLen == 0)
        {
            e.Overflowing.Add(e.Clone());
            Keep(e, 0, 0);
            return;
        }
        if (stride >= maxLen) throw new ArgumentException($"Truncation stride ({stride}) must be smaller than the window ({maxLen})");
        int step = maxLen - stride;
        var ranges = new List<(int S, int E)>();
        if (side == TruncationSide.Right)
        {
            for (int start = 0; start < len; start += step)
            {
                int stop = Math.Min(start + maxLen, len);
                ranges.Add((start, stop));
                if (stop == len) break;
            }
        }
        else
        {
            for (int stop = len; stop > 0; stop -= step)
            {
                int start = Math.Max(stop - maxLen, 0);
                ranges.Add((start, stop));
                if (start == 0) break;
            }
        }
        var copy = e.Clone();
        foreach (var (s, t) in ranges.Skip(1)) e.Overflowing.Add(copy.Slice(s, t));
        Keep(e, ranges[0].S, ranges[0].E);
    }

    private static void Keep(RawEncoding e, int s, int t)
    {
        var kept = e.Slice(s, t);
        e.Ids.Clear(); e.Ids.AddRange(kept.Ids);
        e.TypeIds.Clear(); e.TypeIds.AddRange(kept.TypeIds);
        e.Tokens.Clear(); e.Tokens.AddRange(kept.Tokens);
        e.Offsets.Clear(); e.Offsets.AddRange(kept.Offsets);
        e.WordIds.Clear(); e.WordIds.AddRange(kept.WordIds);
        e.SequenceIds.Clear(); e.SequenceIds.AddRange(kept.SequenceIds);
        e.SpecialTokensMask.Clear(); e.SpecialTokensMask.AddRange(kept.SpecialTokensMask);
    }
}
