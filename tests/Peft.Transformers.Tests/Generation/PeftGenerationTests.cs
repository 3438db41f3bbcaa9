using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Testing;
using Peft.Transformers.Generation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Generation;

/// <summary>
/// <c>Generate</c> on a <see cref="PeftModel"/> over the causal LoRA fixtures (adapters written by PEFT 0.21): greedy
/// decoding with the adapter equals greedy decoding of the merged model, with the adapter disabled it equals the base
/// model's, the cached and uncached loops agree, and a text-generation pipeline over the PeftModel gives Generate + decode.
/// </summary>
public sealed class PeftGenerationTests
{
    public static TheoryData<string> CausalAdapters => new()
    {
        "opt-lora", "opt-lora-bias-all", "gpt2-lora-conv1d", "llama-lora-rslora-all-linear", "llama-dora", "qwen2-lora-layers-pattern",
    };

    internal static string BaseDir(string adapter) =>
        Path.Combine(Fixtures.Hf, JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Adapter(adapter), "reference.json")))!["base_model"]!.GetValue<string>());

    internal static PeftModel LoadPeft(string adapter) =>
        PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(BaseDir(adapter)), Fixtures.Adapter(adapter));

    private static (Tensor Ids, Tensor Mask) Prompts(string adapter)
    {
        var modelName = Path.GetFileName(BaseDir(adapter));
        using var f = SafetensorsFile.Open(Fixtures.Reference(modelName));
        return (f.GetTensor("gen_input_ids"), f.GetTensor("gen_attention_mask"));
    }

    private static readonly GenerationConfig Greedy = new() { MaxNewTokens = 16 };

    [Theory]
    [MemberData(nameof(CausalAdapters))]
    public void Greedy_with_lora_equals_greedy_of_the_merged_model(string adapter)
    {
        using var scope = NewDisposeScope();
        var (ids, mask) = Prompts(adapter);
        using var pm = LoadPeft(adapter);
        var withAdapter = pm.Generate(ids, mask, Greedy);
        Assert.Equal(ids.shape[1] + 16, withAdapter.shape[1]);

        using var copy = LoadPeft(adapter);
        using var merged = (PreTrainedModel)copy.MergeAndUnload();
        Assert.DoesNotContain(merged.named_parameters(), p => p.name.Contains("lora_"));
        TensorAssert.Equal(merged.Generate(ids, mask, Greedy), withAdapter, $"{adapter}: LoRA vs merged greedy");
    }

    /// <summary>
    /// The bias="none" adapters: with bias="all" (opt-lora-bias-all) the trained biases live in the base layers and stay
    /// when the adapter is disabled, as in PEFT, so the disabled model is not the plain base model.
    /// </summary>
    public static TheoryData<string> BiasNoneAdapters => new()
    {
        "opt-lora", "gpt2-lora-conv1d", "llama-lora-rslora-all-linear", "llama-dora", "qwen2-lora-layers-pattern",
    };

    [Theory]
    [MemberData(nameof(BiasNoneAdapters))]
    public void Greedy_with_the_adapter_disabled_equals_the_base_model(string adapter)
    {
        using var scope = NewDisposeScope();
        var (ids, mask) = Prompts(adapter);
        using var pm = LoadPeft(adapter);
        using var plain = AutoModelForCausalLM.FromPretrained(BaseDir(adapter));
        var expected = plain.Generate(ids, mask, Greedy);
        var adapted = pm.Generate(ids, mask, Greedy);
        Assert.False(adapted.eq(expected).all().item<bool>(), $"{adapter}: the adapter does not change greedy decoding, so this test would prove nothing");
        using (pm.DisableAdapter())
            TensorAssert.Equal(expected, pm.Generate(ids, mask, Greedy), $"{adapter}: disabled adapter vs base greedy");
        // The adapter is back on afterwards: its output equals the first adapted run of a fresh copy.
        using var fresh = LoadPeft(adapter);
        TensorAssert.Equal(fresh.Generate(ids, mask, Greedy), pm.Generate(ids, mask, Greedy), $"{adapter}: re-enabled adapter");
    }

    [Theory]
    [MemberData(nameof(CausalAdapters))]
    public void Cached_and_uncached_generation_agree(string adapter)
    {
        using var scope = NewDisposeScope();
        var (ids, mask) = Prompts(adapter);
        using var pm = LoadPeft(adapter);
        var cached = pm.Generate(ids, mask, Greedy);
        var uncached = pm.Generate(ids, mask, Greedy with { UseCache = false });
        TensorAssert.Equal(cached, uncached, $"{adapter}: cached vs uncached");
        var cachedBeams = pm.Generate(ids[..1], mask[..1], new GenerationConfig { MaxNewTokens = 8, NumBeams = 3 });
        var uncachedBeams = pm.Generate(ids[..1], mask[..1], new GenerationConfig { MaxNewTokens = 8, NumBeams = 3, UseCache = false });
        TensorAssert.Equal(cachedBeams, uncachedBeams, $"{adapter}: cached vs uncached beam search");
    }

    [Fact]
    public void The_forward_pass_hands_the_cache_through_and_returns_it()
    {
        using var scope = NewDisposeScope();
        var (ids, mask) = Prompts("opt-lora");
        using var pm = LoadPeft("opt-lora");
        using var _ = no_grad();
        var full = pm.forward(new ModelInput { InputIds = ids, AttentionMask = mask }).Logits!;
        long t = ids.shape[1];
        var first = pm.forward(new ModelInput { InputIds = ids[.., ..(int)(t - 1)], AttentionMask = mask[.., ..(int)(t - 1)], UseCache = true });
        using var cache = first.PastKeyValues;
        Assert.NotNull(cache);
        Assert.Equal(t - 1, cache!.GetSeqLength());
        var second = pm.forward(new ModelInput { InputIds = ids[.., (int)(t - 1)..], AttentionMask = mask, PastKeyValues = cache });
        Assert.Same(cache, second.PastKeyValues);
        Assert.Equal(t, cache.GetSeqLength());
        TensorAssert.Close(full[.., (int)(t - 1)..], second.Logits!, 1e-5, what: "opt-lora: last-position logits with the cache");
    }

    [Theory]
    [InlineData("opt-lora")]
    [InlineData("llama-lora-rslora-all-linear")]
    [InlineData("gpt2-lora-conv1d")]
    public void Text_generation_pipeline_over_a_peft_model_equals_generate_and_decode(string adapter)
    {
        using var scope = NewDisposeScope();
        using var pm = LoadPeft(adapter);
        var tokenizer = AutoTokenizer.FromPretrained(BaseDir(adapter));
        using var pipe = (TextGenerationPipeline)Pipeline.Create("text-generation", pm, tokenizer);
        Assert.Same(((PreTrainedModel)pm.GetBaseModel()).GenerationConfig, pipe.ModelDefaults);
        const string prompt = "Hello, my dog is";
        var config = new GenerationConfig { MaxNewTokens = 12, DoSample = false };

        var promptIds = tokenizer.Encode(prompt);
        var ids = tensor(promptIds.Select(x => (long)x).ToArray(), [1, promptIds.Count]);
        var output = pm.Generate(ids, ones_like(ids), config);
        var seq = output[0].data<long>().Select(x => (int)x).ToArray();
        var newText = tokenizer.Decode(seq, skipSpecialTokens: true)[tokenizer.Decode(promptIds, skipSpecialTokens: true).Length..];

        var full = Assert.Single(pipe.Run(prompt, config, returnFullText: true));
        Assert.Equal(seq, full.GeneratedTokenIds);
        Assert.Equal(prompt + newText, full.GeneratedText);
        var onlyNew = Assert.Single(pipe.Run(prompt, config, returnFullText: false));
        Assert.Equal(newText, onlyNew.GeneratedText);
    }

    [Theory]
    [InlineData("opt-lora")]
    [InlineData("llama-dora")]
    public void Streaming_through_a_peft_model_yields_the_generated_tokens_and_text(string adapter)
    {
        using var scope = NewDisposeScope();
        var (ids, mask) = Prompts(adapter);
        var keep = mask[0].nonzero().squeeze(1);
        var prompt = ids[0].index_select(0, keep).unsqueeze(0);
        using var pm = LoadPeft(adapter);
        var tokenizer = AutoTokenizer.FromPretrained(BaseDir(adapter));
        var config = new GenerationConfig { MaxNewTokens = 10 };
        var generated = pm.Generate(prompt, null, config);
        var newIds = generated[0, (int)prompt.shape[1]..].data<long>().Select(x => (int)x).ToArray();
        var streamed = pm.Stream(prompt, null, config).ToArray();
        Assert.Equal(newIds.Take(streamed.Length), streamed);
        string Decode(IReadOnlyList<int> t) => tokenizer.Decode(t, skipSpecialTokens: true);
        Assert.Equal(Decode(streamed), string.Concat(pm.StreamText(prompt, null, config, Decode)));
    }

    [Fact]
    public void Generate_on_a_peft_model_takes_the_base_models_generation_config()
    {
        using var pm = LoadPeft("opt-lora");
        var pre = (PreTrainedModel)pm.GetBaseModel();
        Assert.Same(pre.GenerationConfig, pm.GenerationDefaults());
    }
}

/// <summary>Generation through a PeftModel releases every intermediate tensor.</summary>
[Collection(LeakTestCollection.Name)]
public sealed class PeftGenerationLeakTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Generate_on_a_peft_model_does_not_leak(bool useCache)
    {
        using var pm = PeftGenerationTests.LoadPeft("opt-lora");
        using var ids = tensor(new long[] { 2, 100, 200, 300 }, [1, 4]);
        LeakCheck.AssertNoGrowth(() =>
        {
            using var o = pm.Generate(ids, null, new GenerationConfig { MaxNewTokens = 6, UseCache = useCache });
        }, 20, what: $"PeftModel.Generate (use_cache={useCache})");
    }
}
