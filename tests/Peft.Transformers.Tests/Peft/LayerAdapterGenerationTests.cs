using Peft.Core;
using Peft.Testing;
using Peft.Transformers.Generation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.PeftParity; // not "...Tests.Peft": that would shadow the root namespace Peft in sibling tests

/// <summary>
/// Generation through a PeftModel with (IA)³ and bottleneck adapters: greedy decoding with the KV cache equals decoding
/// without it (each step recomputed from scratch), and for (IA)³ equals the merged model's.
/// </summary>
public class LayerAdapterGenerationTests
{
    private static readonly GenerationConfig Greedy = new() { MaxNewTokens = 8, DoSample = false };

    private static Tensor Prompt() => tensor(new long[] { 5, 17, 42, 99, 7, 300 }, [1, 6]);

    private static void Randomize(PeftModel pm, string name, Func<Tensor, Tensor> values)
    {
        using var _ = no_grad();
        foreach (var (n, p) in pm.named_parameters())
        {
            if (n.Contains(name)) p.copy_(values(p));
        }
    }

    [Theory]
    [InlineData("opt-tiny")]
    [InlineData("gpt2-tiny")]
    public void IA3GreedyWithCacheEqualsNoCacheAndTheMergedModel(string model)
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(AutoModelForCausalLM.FromPretrained(Fixtures.Model(model)), new IA3Config { TaskType = TaskType.CausalLM });
        pm.eval();
        var g = new Generator(21);
        Randomize(pm, "ia3_l", p => rand(p.shape, generator: g) * 1.5 + 0.25);
        var prompt = Prompt();
        var cached = pm.Generate(prompt, null, Greedy);
        var recomputed = pm.Generate(prompt, null, Greedy with { UseCache = false });
        TensorAssert.Equal(recomputed, cached, "cache vs recomputation");
        using (pm.DisableAdapter())
        {
            var plain = pm.Generate(prompt, null, Greedy);
            Assert.False(plain.data<long>().ToArray().SequenceEqual(cached.data<long>().ToArray()), $"the adapter changes the greedy continuation: {string.Join(",", plain.data<long>().ToArray())} vs {string.Join(",", cached.data<long>().ToArray())}");
        }
        var merged = (PreTrainedModel)pm.MergeAndUnload();
        TensorAssert.Equal(cached, merged.Generate(prompt, null, Greedy), "merged model");
    }

    [Theory]
    [InlineData("gpt2-tiny", BottleneckPlacement.Houlsby)]
    [InlineData("llama-tiny", BottleneckPlacement.Pfeiffer)]
    public void BottleneckGreedyWithCacheEqualsNoCache(string model, BottleneckPlacement placement)
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(AutoModelForCausalLM.FromPretrained(Fixtures.Model(model)),
            new AdapterConfig { Placement = placement, ReductionFactor = 4, TaskType = TaskType.CausalLM });
        pm.eval();
        var g = new Generator(22);
        Randomize(pm, "adapter_up", p => randn(p.shape, generator: g) * 0.3);
        var prompt = Prompt();
        var cached = pm.Generate(prompt, null, Greedy);
        TensorAssert.Equal(pm.Generate(prompt, null, Greedy with { UseCache = false }), cached, "cache vs recomputation");
        using (pm.DisableAdapter())
        {
            var plain = pm.Generate(prompt, null, Greedy);
            Assert.False(plain.data<long>().ToArray().SequenceEqual(cached.data<long>().ToArray()), $"the adapter changes the greedy continuation: {string.Join(",", plain.data<long>().ToArray())} vs {string.Join(",", cached.data<long>().ToArray())}");
        }
    }
}
