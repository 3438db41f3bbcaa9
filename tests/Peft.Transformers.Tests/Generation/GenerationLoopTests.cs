using Peft.Core;
using Peft.Testing;
using Peft.Transformers.Generation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Generation;

public sealed class GenerationLoopTests
{
    private static Tensor Ids(params long[][] rows) => tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length]);

    private static long[] Row(Tensor t, int r) => t[r].data<long>().ToArray();

    /// <summary>nanoGPT-style reference: full forward each step, argmax, no cache, no processors.</summary>
    private static long[] NaiveGreedy(ToyCausalLM m, long[] prompt, int steps)
    {
        var seq = prompt.ToList();
        for (int i = 0; i < steps; i++)
        {
            using var ids = tensor(seq.ToArray(), [1, seq.Count]);
            using var logits = m.LastLogits(ids);
            seq.Add(logits.argmax(-1).item<long>());
        }
        return seq.ToArray();
    }

    [Fact]
    public void Greedy_matches_naive_loop_and_feeds_one_token_per_step()
    {
        var m = new ToyCausalLM();
        long[] prompt = [3, 5, 7, 1];
        using var ids = Ids(prompt);
        using var outIds = GenerationLoop.Generate(m, ids, null, new GenerationConfig { MaxNewTokens = 10 });
        Assert.Equal(NaiveGreedy(new ToyCausalLM(), prompt, 10), Row(outIds, 0));
        // prompt once, then one token for each of the 9 remaining steps
        Assert.Equal(4 + 9, m.TokensFed);
        Assert.Equal(10, m.Forwards);
    }

    /// <summary>
    /// Without padding the decode steps get no mask (nor is one grown per step) and the tokens equal a run where the
    /// prompt is padded on the left (which keeps the mask on every step): the two paths agree.
    /// </summary>
    [Fact]
    public void Unpadded_prompts_decode_without_a_mask_and_equal_the_masked_path()
    {
        using var scope = NewDisposeScope();
        var plain = new ToyCausalLM();
        var masked = new ToyCausalLM();
        var prompt = Ids([3, 9, 4, 11]);
        using var a = GenerationLoop.Generate(plain, prompt, ones_like(prompt), new GenerationConfig { MaxNewTokens = 9 });
        var padded = Ids([0, 0, 3, 9, 4, 11]);
        var mask = Ids([0, 0, 1, 1, 1, 1]);
        using var b = GenerationLoop.Generate(masked, padded, mask, new GenerationConfig { MaxNewTokens = 9, PadTokenId = 0 });
        Assert.All(plain.MaskPassed, passed => Assert.False(passed));
        Assert.All(masked.MaskPassed, passed => Assert.True(passed));
        Assert.Equal(Row(a, 0)[4..], Row(b, 0)[6..]);
    }

    [Fact]
    public void Unpadded_decode_past_the_position_table_growth_equals_the_masked_path()
    {
        // the mask-free path keeps one arange of positions and regrows it (64, then doubling); 300 positions cross
        // two regrowths (a regression: the old table was disposed before its length was read)
        using var scope = NewDisposeScope();
        var plain = new ToyCausalLM(maxPositions: 512);
        var masked = new ToyCausalLM(maxPositions: 512);
        var prompt = Ids([3, 9, 4, 11]);
        var config = new GenerationConfig { MaxNewTokens = 296, MinNewTokens = 296 };
        using var a = GenerationLoop.Generate(plain, prompt, ones_like(prompt), config);
        using var b = GenerationLoop.Generate(masked, Ids([0, 3, 9, 4, 11]), Ids([0, 1, 1, 1, 1]),
            new GenerationConfig { MaxNewTokens = 296, MinNewTokens = 296, PadTokenId = 0 });
        Assert.Equal(300, a.shape[1]);
        Assert.All(plain.MaskPassed, passed => Assert.False(passed));
        Assert.Equal(Row(a, 0)[4..], Row(b, 0)[5..]);
    }

    [Fact]
    public void Cache_and_no_cache_give_identical_greedy_outputs()
    {
        using var ids = Ids([0, 0, 4, 9, 2], [3, 8, 6, 1, 5]);
        using var mask = Ids([0, 0, 1, 1, 1], [1, 1, 1, 1, 1]);
        var cached = new ToyCausalLM();
        var uncached = new ToyCausalLM();
        var noCacheModel = new ToyCausalLM(supportsCache: false);
        using var a = GenerationLoop.Generate(cached, ids, mask, new GenerationConfig { MaxNewTokens = 12 });
        using var b = GenerationLoop.Generate(uncached, ids, mask, new GenerationConfig { MaxNewTokens = 12, UseCache = false });
        using var c = GenerationLoop.Generate(noCacheModel, ids, mask, new GenerationConfig { MaxNewTokens = 12 });
        TensorAssert.Equal(a, b, "use_cache=false");
        TensorAssert.Equal(a, c, "model without cache");
        Assert.True(cached.TokensFed < uncached.TokensFed / 3, $"cached fed {cached.TokensFed}, uncached {uncached.TokensFed}");
    }

    [Fact]
    public void Left_padding_does_not_change_a_prompt_continuation()
    {
        var m = new ToyCausalLM();
        using var single = Ids([4, 9, 2]);
        using var batch = Ids([0, 0, 4, 9, 2], [3, 8, 6, 1, 5]);
        using var mask = Ids([0, 0, 1, 1, 1], [1, 1, 1, 1, 1]);
        using var a = GenerationLoop.Generate(m, single, null, new GenerationConfig { MaxNewTokens = 8 });
        using var b = GenerationLoop.Generate(m, batch, mask, new GenerationConfig { MaxNewTokens = 8 });
        Assert.Equal(Row(a, 0), Row(b, 0)[2..]);
        Assert.Equal(NaiveGreedy(m, [3, 8, 6, 1, 5], 8), Row(b, 1));
    }

    [Fact]
    public void Default_max_length_is_20_and_max_new_tokens_wins()
    {
        var m = new ToyCausalLM();
        using var ids = Ids([1, 2, 3]);
        using var a = GenerationLoop.Generate(m, ids, null, new GenerationConfig());
        Assert.Equal(20, a.shape[1]);
        using var b = GenerationLoop.Generate(m, ids, null, new GenerationConfig { MaxLength = 6 });
        Assert.Equal(6, b.shape[1]);
        using var c = GenerationLoop.Generate(m, ids, null, new GenerationConfig { MaxLength = 6, MaxNewTokens = 5 });
        Assert.Equal(8, c.shape[1]);
        using var d = GenerationLoop.Generate(m, ids, null, new GenerationConfig(), new GenerationConfig { MaxLength = 9 });
        Assert.Equal(9, d.shape[1]);
    }

    [Fact]
    public void Finished_rows_are_filled_with_pad_and_pad_defaults_to_eos()
    {
        var m = new ToyCausalLM();
        using var ids = Ids([0, 3, 8], [5, 5, 1]);
        using var mask = Ids([0, 1, 1], [1, 1, 1]);
        using var free = GenerationLoop.Generate(m, ids, mask, new GenerationConfig { MaxNewTokens = 8 });
        // row 0's third new token becomes "eos": the row must stop there and be padded
        long eos = Row(free, 0)[3 + 2];
        int firstEos1 = Array.IndexOf(Row(free, 1)[3..], eos);
        using var padded = GenerationLoop.Generate(m, ids, mask, new GenerationConfig { MaxNewTokens = 8, EosTokenId = (int)eos, PadTokenId = 21 });
        var r0 = Row(padded, 0);
        Assert.Equal(Row(free, 0)[..6], r0[..6]);
        Assert.All(r0[6..], x => Assert.Equal(21L, x));
        if (firstEos1 < 0) Assert.Equal(Row(free, 1)[..(int)padded.shape[1]], Row(padded, 1));
        using var eosPad = GenerationLoop.Generate(m, ids, mask, new GenerationConfig { MaxNewTokens = 8, EosTokenId = (int)eos });
        Assert.All(Row(eosPad, 0)[6..], x => Assert.Equal(eos, x));
        // several eos ids: the earliest of any stops the row
        long other = Row(free, 0)[3 + 1];
        using var multi = GenerationLoop.Generate(m, ids, mask, new GenerationConfig { MaxNewTokens = 8, EosTokenIds = [(int)eos, (int)other], PadTokenId = 21 });
        Assert.All(Row(multi, 0)[5..], x => Assert.Equal(21L, x));
    }

    [Fact]
    public void Generation_stops_when_every_row_has_finished()
    {
        var m = new ToyCausalLM();
        using var ids = Ids([3, 8]);
        using var free = GenerationLoop.Generate(m, ids, null, new GenerationConfig { MaxNewTokens = 8 });
        long eos = Row(free, 0)[3];
        using var stopped = GenerationLoop.Generate(m, ids, null, new GenerationConfig { MaxNewTokens = 8, EosTokenId = (int)eos });
        Assert.Equal(Row(free, 0)[..4], Row(stopped, 0));
    }

    /// <summary>
    /// The finished flag is read from the device only every few steps: the steps run after every row has finished are
    /// cut off again, so the output is HF's (stopped at the eos), at the cost of a few extra forwards.
    /// </summary>
    [Fact]
    public void Deferred_finish_check_trims_the_extra_steps()
    {
        var m = new ToyCausalLM();
        using var ids = Ids([3, 8]);
        using var free = GenerationLoop.Generate(m, ids, null, new GenerationConfig { MaxNewTokens = 30 });
        long eos = Row(free, 0)[2 + 3];
        int steps = Array.IndexOf(Row(free, 0)[2..], eos) + 1;                         // HF stops at the first eos
        var counted = new ToyCausalLM();
        using var stopped = GenerationLoop.Generate(counted, ids, null, new GenerationConfig { MaxNewTokens = 30, EosTokenId = (int)eos });
        Assert.Equal(Row(free, 0)[..(2 + steps)], Row(stopped, 0));
        Assert.True(counted.Forwards >= steps && counted.Forwards < steps + 8, $"{counted.Forwards} forwards for {steps} steps");
    }

    [Fact]
    public void Min_new_tokens_suppresses_eos()
    {
        var m = new ToyCausalLM();
        using var ids = Ids([3, 8]);
        using var free = GenerationLoop.Generate(m, ids, null, new GenerationConfig { MaxNewTokens = 6 });
        long eos = Row(free, 0)[2];
        using var g = GenerationLoop.Generate(m, ids, null, new GenerationConfig { MaxNewTokens = 6, EosTokenId = (int)eos, MinNewTokens = 3 });
        var row = Row(g, 0);
        Assert.Equal(8, row.Length);
        Assert.DoesNotContain(eos, row[2..5]);
    }

    [Fact]
    public void Sampling_with_a_seed_is_reproducible_and_top_k_1_is_greedy()
    {
        var m = new ToyCausalLM(scale: 0.5);
        using var ids = Ids([0, 3, 8], [5, 5, 1]);
        using var mask = Ids([0, 1, 1], [1, 1, 1]);
        var cfg = new GenerationConfig { MaxNewTokens = 12, DoSample = true, Seed = 1234, Temperature = 1.3, TopK = 0 };
        using var a = GenerationLoop.Generate(m, ids, mask, cfg);
        using var b = GenerationLoop.Generate(m, ids, mask, cfg);
        TensorAssert.Equal(a, b, "same seed");
        using var c = GenerationLoop.Generate(m, ids, mask, cfg with { Seed = 99 });
        Assert.False(a.eq(c).all().item<bool>(), "another seed should differ somewhere over 24 sampled tokens");
        using var greedy = GenerationLoop.Generate(m, ids, mask, new GenerationConfig { MaxNewTokens = 12 });
        using var topk1 = GenerationLoop.Generate(m, ids, mask, cfg with { TopK = 1 });
        TensorAssert.Equal(greedy, topk1, "top_k=1");
    }

    [Fact]
    public void Sampling_num_return_sequences_expands_each_prompt()
    {
        var m = new ToyCausalLM(scale: 0.5);
        using var ids = Ids([0, 3, 8], [5, 5, 1]);
        using var mask = Ids([0, 1, 1], [1, 1, 1]);
        using var o = GenerationLoop.Generate(m, ids, mask, new GenerationConfig { MaxNewTokens = 4, DoSample = true, Seed = 5, NumReturnSequences = 3 });
        Assert.Equal(new long[] { 6, 7 }, o.shape);
        for (int r = 0; r < 3; r++) Assert.Equal(Row(ids, 0), Row(o, r)[..3]);
        for (int r = 3; r < 6; r++) Assert.Equal(Row(ids, 1), Row(o, r)[..3]);
        Assert.Throws<ArgumentException>(() => GenerationLoop.Generate(m, ids, mask, new GenerationConfig { NumReturnSequences = 2 }));
    }

    /// <summary>
    /// One sampled token, 6000 times: the frequencies must follow softmax(warped logits). Pearson's chi-square over
    /// the kept tokens stays below the 0.999 quantile; tokens removed by top-k / top-p never appear.
    /// </summary>
    [Theory]
    [InlineData(1.0, 0, 1.0)]
    [InlineData(0.7, 5, 1.0)]
    [InlineData(1.5, 0, 0.8)]
    public void Sampling_frequencies_follow_the_warped_distribution(double temperature, int topK, double topP)
    {
        var m = new ToyCausalLM(scale: 0.4);
        const int n = 6000;
        using var prompt = Ids([3, 8, 6]);
        var cfg = new GenerationConfig { MaxNewTokens = 1, DoSample = true, Seed = 42, Temperature = temperature, TopK = topK, TopP = topP, NumReturnSequences = n };
        using var o = GenerationLoop.Generate(m, prompt, null, cfg);
        var counts = new int[23];
        foreach (var t in o[.., -1].data<long>()) counts[t]++;

        using var logits = m.LastLogits(prompt).to_type(ScalarType.Float64);
        var probs = ExpectedProbabilities(logits[0].data<double>().ToArray(), temperature, topK, topP);
        double chi2 = 0;
        int df = -1;
        for (int v = 0; v < probs.Length; v++)
        {
            if (probs[v] == 0) { Assert.Equal(0, counts[v]); continue; }
            double e = n * probs[v];
            chi2 += (counts[v] - e) * (counts[v] - e) / e;
            df++;
        }
        // 0.999 quantile of chi-square ≈ df + 3.1·sqrt(2 df) + 7 (Wilson–Hilferty, rounded up)
        double bound = df + 3.1 * Math.Sqrt(2.0 * df) + 7;
        Assert.True(df >= 1, "the test needs at least two kept tokens");
        Assert.True(chi2 < bound, $"chi2 = {chi2:F1} over {df} dof exceeds {bound:F1}; counts [{string.Join(",", counts)}], probs [{string.Join(",", probs.Select(p => p.ToString("F3")))}]");
    }

    /// <summary>Independent reference of temperature → top-k → top-p, written with plain doubles.</summary>
    private static double[] ExpectedProbabilities(double[] logits, double temperature, int topK, double topP)
    {
        var s = logits.Select(x => x / temperature).ToArray();
        if (topK > 0)
        {
            double kth = s.OrderByDescending(x => x).ElementAt(topK - 1);
            for (int i = 0; i < s.Length; i++) if (s[i] < kth) s[i] = double.NegativeInfinity;
        }
        double[] Softmax(double[] x) { double mx = x.Max(); var e = x.Select(v => Math.Exp(v - mx)).ToArray(); double z = e.Sum(); return e.Select(v => v / z).ToArray(); }
        if (topP < 1)
        {
            var p = Softmax(s);
            var order = Enumerable.Range(0, s.Length).OrderBy(i => p[i]).ToArray();   // ascending
            double cum = 0;
            for (int j = 0; j < order.Length - 1; j++)
            {
                cum += p[order[j]];
                if (cum <= 1 - topP) s[order[j]] = double.NegativeInfinity;
            }
        }
        return Softmax(s);
    }

    /// <summary>Plain beam search without eos: keep the best K partial sequences by summed log-probability.</summary>
    private static List<(long[] Seq, double Score)> NaiveBeams(ToyCausalLM m, long[] prompt, int beams, int steps)
    {
        var live = new List<(long[] Seq, double Score)> { (prompt, 0.0) };
        for (int s = 0; s < steps; s++)
        {
            var cands = new List<(long[] Seq, double Score)>();
            foreach (var (seq, score) in live)
            {
                using var ids = tensor(seq, [1, seq.Length]);
                using var lp = m.LastLogits(ids).log_softmax(-1);
                var arr = lp[0].data<float>().ToArray();
                for (int v = 0; v < arr.Length; v++) cands.Add(([.. seq, v], score + arr[v]));
            }
            live = cands.OrderByDescending(c => c.Score).Take(beams).ToList();
        }
        return live;
    }

    [Fact]
    public void Beam_search_without_eos_matches_a_plain_beam_search()
    {
        var m = new ToyCausalLM(scale: 0.5);
        long[] prompt = [3, 8, 6];
        var expected = NaiveBeams(m, prompt, 3, 6);
        using var ids = Ids(prompt);
        using var o = GenerationLoop.Generate(m, ids, null, new GenerationConfig { MaxNewTokens = 6, NumBeams = 3, NumReturnSequences = 3 });
        Assert.Equal(new long[] { 3, 9 }, o.shape);
        for (int r = 0; r < 3; r++) Assert.Equal(expected[r].Seq, Row(o, r));
        using var noCache = GenerationLoop.Generate(m, ids, null, new GenerationConfig { MaxNewTokens = 6, NumBeams = 3, NumReturnSequences = 3, UseCache = false });
        TensorAssert.Equal(o, noCache, "beam search without cache");
    }

    [Fact]
    public void Beam_search_batches_left_padded_prompts_independently()
    {
        var m = new ToyCausalLM(scale: 0.5);
        using var single = Ids([4, 9, 2]);
        using var batch = Ids([0, 0, 4, 9, 2], [3, 8, 6, 1, 5]);
        using var mask = Ids([0, 0, 1, 1, 1], [1, 1, 1, 1, 1]);
        var cfg = new GenerationConfig { MaxNewTokens = 5, NumBeams = 4, NumReturnSequences = 2 };
        using var a = GenerationLoop.Generate(m, single, null, cfg);
        using var b = GenerationLoop.Generate(m, batch, mask, cfg);
        Assert.Equal(new long[] { 4, 10 }, b.shape);
        Assert.Equal(Row(a, 0), Row(b, 0)[2..]);
        Assert.Equal(Row(a, 1), Row(b, 1)[2..]);
    }

    [Fact]
    public void Beam_search_with_eos_returns_the_finished_hypothesis()
    {
        var m = new ToyCausalLM(scale: 0.5);
        using var ids = Ids([3, 8, 6]);
        using var free = GenerationLoop.Generate(m, ids, null, new GenerationConfig { MaxNewTokens = 6, NumBeams = 3 });
        long eos = Row(free, 0)[3 + 1];
        using var o = GenerationLoop.Generate(m, ids, null, new GenerationConfig { MaxNewTokens = 6, NumBeams = 3, EosTokenId = (int)eos });
        var row = Row(o, 0);
        // every returned row ends at its first eos, padded with eos (pad = eos) after it
        int i = Array.IndexOf(row[3..], eos);
        Assert.True(i >= 0 || row.Length == 9, "either finished with eos or ran to the length limit");
        if (i >= 0) Assert.All(row[(3 + i)..], x => Assert.Equal(eos, x));
    }

    [Fact]
    public void Stream_yields_the_same_tokens_as_generate_and_honours_cancellation()
    {
        var m = new ToyCausalLM();
        using var ids = Ids([3, 5, 7]);
        var cfg = new GenerationConfig { MaxNewTokens = 9 };
        using var full = GenerationLoop.Generate(m, ids, null, cfg);
        var streamed = GenerationLoop.Stream(m, ids, null, cfg).Select(x => (long)x).ToArray();
        Assert.Equal(Row(full, 0)[3..], streamed);

        var pieces = GenerationLoop.StreamText(m, ids, null, cfg, toks => string.Concat(toks.Select(t => (char)('a' + t)))).ToList();
        Assert.Equal(string.Concat(streamed.Select(t => (char)('a' + t))), string.Concat(pieces));

        // TextStreamer rule: pieces end at a space (or newline); the rest is flushed at the end
        static string Dec(IReadOnlyList<int> toks) => string.Concat(toks.Select(t => t % 4 == 0 ? ' ' : t % 7 == 0 ? '\n' : (char)('a' + t)));
        var spaced = GenerationLoop.StreamText(m, ids, null, cfg, Dec).ToList();
        Assert.Equal(Dec(streamed.Select(x => (int)x).ToList()), string.Concat(spaced));
        Assert.All(spaced.Take(spaced.Count - 1), p => Assert.True(p.EndsWith(' ') || p.EndsWith('\n'), $"piece '{p}' ends inside a word"));

        using var cts = new CancellationTokenSource();
        int seen = 0;
        Assert.Throws<OperationCanceledException>(() =>
        {
            foreach (var _ in GenerationLoop.Stream(m, ids, null, cfg, cancellationToken: cts.Token))
                if (++seen == 3) cts.Cancel();
        });
        Assert.Equal(3, seen);
        cts.Dispose();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Throws<OperationCanceledException>(() => GenerationLoop.Generate(m, ids, null, cfg, null, cancelled.Token));
    }

    [Fact]
    public void Bad_input_fails_fast_with_the_value()
    {
        var m = new ToyCausalLM();
        using var ids = Ids([3, 5, 7]);
        var e = Assert.Throws<ArgumentException>(() => GenerationLoop.Generate(m, ids, null, new GenerationConfig { NumBeams = 0 }));
        Assert.Contains("NumBeams = 0", e.Message);
        using var f = ids.to_type(ScalarType.Int32);
        Assert.Throws<ArgumentException>(() => GenerationLoop.Generate(m, f, null, new GenerationConfig()));
        using var bad = ones(1, 2, ScalarType.Int64);
        Assert.Throws<ArgumentException>(() => GenerationLoop.Generate(m, ids, bad, new GenerationConfig()));
    }
}

[Collection(LeakTestCollection.Name)]
public sealed class GenerationLeakTests
{
    [Fact]
    public void Greedy_sampling_and_beam_search_leak_no_tensors()
    {
        var m = new ToyCausalLM();
        using var ids = tensor(new long[] { 0, 3, 8, 5, 5, 1 }, [2, 3]);
        using var mask = tensor(new long[] { 0, 1, 1, 1, 1, 1 }, [2, 3]);
        LeakCheck.AssertNoGrowth(() => GenerationLoop.Generate(m, ids, mask, new GenerationConfig { MaxNewTokens = 5, RepetitionPenalty = 1.3, NoRepeatNgramSize = 2 }).Dispose(), 10, what: "greedy");
        LeakCheck.AssertNoGrowth(() => GenerationLoop.Generate(m, ids, mask, new GenerationConfig { MaxNewTokens = 5, DoSample = true, Seed = 1, TopP = 0.9 }).Dispose(), 10, what: "sampling");
        LeakCheck.AssertNoGrowth(() => GenerationLoop.Generate(m, ids, mask, new GenerationConfig { MaxNewTokens = 5, NumBeams = 3, EosTokenId = 4 }).Dispose(), 10, what: "beam search");
        using var one = ids[..1];
        using var oneMask = mask[..1];
        LeakCheck.AssertNoGrowth(() => GenerationLoop.Stream(m, one, oneMask, new GenerationConfig { MaxNewTokens = 5 }).ToList(), 10, what: "stream");
    }
}
