using Peft.Testing;
using Peft.Transformers.Generation;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Generation;

/// <summary>Each processor on small hand-worked cases (HF logits_process.py semantics).</summary>
public sealed class LogitsProcessorTests
{
    private static Tensor Row(params float[] x) => tensor(x, [1, x.Length]);
    private static Tensor Ids(params long[] x) => tensor(x, [1, x.Length]);

    [Fact]
    public void Repetition_penalty_divides_positive_and_multiplies_negative_scores_of_seen_tokens()
    {
        using var s = Row(2f, -2f, 1f, 4f);
        using var ids = Ids(0, 1, 1);
        using var o = new RepetitionPenaltyLogitsProcessor(2.0).Process(ids, s);
        TensorAssert.Close(Row(1f, -4f, 1f, 4f), o, 0);
        TensorAssert.Close(Row(2f, -2f, 1f, 4f), s, 0, what: "input untouched");
    }

    [Fact]
    public void No_repeat_ngram_bans_the_token_that_would_repeat_a_seen_ngram()
    {
        using var s = Row(0f, 0f, 0f, 0f);
        using var ids = Ids(1, 2, 3, 1);                   // bigram (1, 2) seen; the sequence ends in 1 -> ban 2
        using var o = new NoRepeatNGramLogitsProcessor(2).Process(ids, s);
        Assert.Equal(new[] { 0f, 0f, float.NegativeInfinity, 0f }, o[0].data<float>().ToArray());
        using var tri = new NoRepeatNGramLogitsProcessor(3).Process(ids, s);   // (2, 3, ?) not the suffix (3, 1): nothing banned
        Assert.All(tri[0].data<float>().ToArray(), x => Assert.Equal(0f, x));
    }

    [Fact]
    public void Min_length_processors_hide_eos_until_enough_tokens()
    {
        using var s = Row(1f, 2f, 3f);
        using var ids = Ids(0, 1);
        using var a = new MinNewTokensLengthLogitsProcessor(promptLength: 1, minNewTokens: 2, [2]).Process(ids, s);
        Assert.Equal(float.NegativeInfinity, a[0, 2].item<float>());
        using var b = new MinNewTokensLengthLogitsProcessor(promptLength: 0, minNewTokens: 2, [2]).Process(ids, s);
        Assert.Equal(3f, b[0, 2].item<float>());
        using var c = new MinLengthLogitsProcessor(3, [0, 2]).Process(ids, s);
        Assert.Equal(new[] { float.NegativeInfinity, 2f, float.NegativeInfinity }, c[0].data<float>().ToArray());
    }

    [Fact]
    public void Top_k_keeps_ties_and_top_p_keeps_the_smallest_set_above_p()
    {
        using var s = Row(1f, 3f, 3f, 2f);
        using var k = new TopKLogitsWarper(1).Process(Ids(0), s);
        Assert.Equal(new[] { float.NegativeInfinity, 3f, 3f, float.NegativeInfinity }, k[0].data<float>().ToArray());

        // probabilities 0.5, 0.3, 0.2: ascending cumulative 0.2, 0.5, 1.0; remove where <= 1 - 0.7 -> only the 0.2 token
        using var p = Row((float)Math.Log(0.5), (float)Math.Log(0.3), (float)Math.Log(0.2));
        using var top = new TopPLogitsWarper(0.7).Process(Ids(0), p);
        var v = top[0].data<float>().ToArray();
        Assert.True(float.IsNegativeInfinity(v[2]) && !float.IsInfinity(v[0]) && !float.IsInfinity(v[1]));
        using var all = new TopPLogitsWarper(0.9).Process(Ids(0), p);    // 0.2 > 0.1: nothing removed
        Assert.DoesNotContain(all[0].data<float>().ToArray(), float.IsInfinity);
        using var one = new TopPLogitsWarper(0.01).Process(Ids(0), p);   // min_tokens_to_keep = 1 keeps the best
        Assert.Equal(1, one[0].data<float>().ToArray().Count(x => !float.IsInfinity(x)));

        using var t = new TemperatureLogitsWarper(0.5).Process(Ids(0), s);
        TensorAssert.Close(Row(2f, 6f, 6f, 4f), t, 1e-6);
    }

    [Fact]
    public void Processor_list_follows_hf_order_and_skips_warpers_when_greedy()
    {
        var greedy = LogitsProcessorList.FromConfig(new GenerationConfig { RepetitionPenalty = 1.2, NoRepeatNgramSize = 2, MinNewTokens = 1, EosTokenId = 0, Temperature = 0.5, TopP = 0.9 }, 3);
        Assert.Equal([typeof(RepetitionPenaltyLogitsProcessor), typeof(NoRepeatNGramLogitsProcessor), typeof(MinNewTokensLengthLogitsProcessor)], greedy.Select(p => p.GetType()));
        var sampling = LogitsProcessorList.FromConfig(new GenerationConfig { DoSample = true, Temperature = 0.5, TopP = 0.9 }, 3);
        Assert.Equal([typeof(TemperatureLogitsWarper), typeof(TopKLogitsWarper), typeof(TopPLogitsWarper)], sampling.Select(p => p.GetType()));
    }
}
