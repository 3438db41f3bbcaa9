using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Core.Tuners;
using Peft.Testing;
using Peft.Transformers.Generation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Generation;

/// <summary>
/// Static-cache decoding (<c>cache_implementation = "static"</c>, the path CUDA graphs capture) run eagerly on the
/// CPU: the same code as on CUDA minus the capture. Tokens must equal the dynamic cache's and transformers 5.17's
/// references on every cached causal fixture; per-step logits must match the dynamic path within fp32 rounding.
/// </summary>
public sealed class StaticCacheDecodingTests
{
    public static TheoryData<string> CausalModels => new() { "gpt2-tiny", "opt-tiny", "llama-tiny", "qwen2-tiny" };

    private static readonly GenerationConfig Static = new() { CacheImplementation = GenerationConfig.CacheStatic };

    private static Dictionary<string, Tensor> Reference(string name)
    {
        using var f = SafetensorsFile.Open(Fixtures.Reference(name));
        return f.ReadAll();
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Static_greedy_on_a_left_padded_batch_matches_hf_and_the_dynamic_cache(string name)
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name));
        var r = Reference(name);
        using var o = model.Generate(r["gen_input_ids"], r["gen_attention_mask"], Static with { MaxNewTokens = 16 });
        TensorAssert.Equal(r["greedy_output_ids"], o, $"{name} static greedy");
        using var dyn = model.Generate(r["gen_input_ids"], r["gen_attention_mask"], new GenerationConfig { MaxNewTokens = 16, CacheImplementation = GenerationConfig.CacheDynamic });
        TensorAssert.Equal(dyn, o, $"{name} static vs dynamic");
        using var pen = model.Generate(r["gen_input_ids"], r["gen_attention_mask"], Static with { MaxNewTokens = 16, RepetitionPenalty = 1.5 });
        TensorAssert.Equal(r["greedy_reppen1.5_output_ids"], pen, $"{name} static repetition_penalty 1.5");
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Static_greedy_and_sampling_without_padding_match_the_dynamic_cache(string name)
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name));
        long vocab = model.GetInputEmbeddings().weight!.shape[0];
        var g = new Generator(11);
        using var one = randint(3, vocab, [1, 7], generator: g, dtype: ScalarType.Int64);
        using var batch = randint(3, vocab, [3, 5], generator: g, dtype: ScalarType.Int64);
        foreach (var (ids, what) in new[] { (one, "batch 1"), (batch, "batch 3") })
        {
            // eos off: every row runs the full 20 steps, through the whole static decode path
            var greedy = new GenerationConfig { MaxNewTokens = 20, EosTokenIds = [] };
            using var dyn = model.Generate(ids, null, greedy with { CacheImplementation = GenerationConfig.CacheDynamic });
            using var st = model.Generate(ids, null, greedy with { CacheImplementation = GenerationConfig.CacheStatic });
            TensorAssert.Equal(dyn, st, $"{name} {what} greedy");
            var sample = new GenerationConfig { MaxNewTokens = 12, DoSample = true, Seed = 5, TopK = 20, Temperature = 0.8 };
            using var dynS = model.Generate(ids, null, sample with { CacheImplementation = GenerationConfig.CacheDynamic });
            using var stS = model.Generate(ids, null, sample with { CacheImplementation = GenerationConfig.CacheStatic });
            TensorAssert.Equal(dynS, stS, $"{name} {what} sampling");
        }
    }

    // Measured on these fixtures (fp32, CPU, 12 steps of the padded batch): max |static − dynamic| = 2.9e-6 (gpt2),
    // 1.9e-6 (opt), 4.3e-6 (llama), 3.3e-6 (qwen2): SDPA reduces over C = 256 key columns instead of past + 1 (the
    // masked ones add exact zeros, but the blocked sums round differently) and the difference passes through every
    // layer. 2e-5 is ~5× that; a masking or position error moves logits by far more (≥ 1e-2).
    private const double LogitTolerance = 2e-5;

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Per_step_logits_equal_the_dynamic_path_within_fp32_rounding(string name)
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name));
        var r = Reference(name);
        var mask = r["gen_attention_mask"];
        using var full = model.Generate(r["gen_input_ids"], mask, new GenerationConfig { MaxNewTokens = 12, EosTokenIds = [], CacheImplementation = GenerationConfig.CacheDynamic });
        long rows = full.shape[0], prompt = mask.shape[1], total = full.shape[1];
        using var fullMask = cat([mask, ones(rows, total - prompt, ScalarType.Int64)], 1);
        using var state = new StaticDecodeState(rows, StaticDecoding.Capacity(total), CPU, useGraph: false);
        using var dynamicStepper = new ModelStepper(model, useCache: true);
        using var staticStepper = new ModelStepper(model, useCache: true, state);
        double worst = 0;
        using (no_grad())
        {
            for (long t = prompt; t < total; t++)
            {
                using var scope = NewDisposeScope();
                var ids = full.narrow(1, 0, t);
                var m = fullMask.narrow(1, 0, t);
                var a = dynamicStepper.Forward(ids, m);
                var b = staticStepper.Forward(ids, m);
                worst = Math.Max(worst, a.sub(b).abs().max().item<float>());
            }
        }
        Assert.True(worst <= LogitTolerance, $"{name}: max |logit diff| static vs dynamic = {worst:E3} > {LogitTolerance:E0}");
    }

    [Fact]
    public void The_kept_state_is_reused_across_calls_with_different_prompts()
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny"));
        var g = new Generator(3);
        using var p1 = randint(3, 200, [2, 6], generator: g, dtype: ScalarType.Int64);
        using var p2 = randint(3, 200, [2, 9], generator: g, dtype: ScalarType.Int64);
        using var m2 = tensor(new long[] { 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, [2, 9]);
        var cfg = Static with { MaxNewTokens = 10, EosTokenIds = [] };
        using var a1 = model.Generate(p1, null, cfg);
        var kept = model.StaticDecodeHolder;
        using var a2 = model.Generate(p2, m2, cfg);                 // same rows and capacity bucket: the kept state
        using var a3 = model.Generate(p1, null, cfg);
        model.ReleaseGenerationCaches();
        using var fresh2 = model.Generate(p2, m2, cfg);
        model.ReleaseGenerationCaches();
        using var dyn2 = model.Generate(p2, m2, cfg with { CacheImplementation = GenerationConfig.CacheDynamic });
        Assert.Same(kept, model.StaticDecodeHolder);
        TensorAssert.Equal(a1, a3, "the first prompt again after another one");
        TensorAssert.Equal(fresh2, a2, "second prompt: reused state vs fresh state");
        TensorAssert.Equal(dyn2, a2, "second prompt: reused static vs dynamic");
    }

    [Fact]
    public void A_changed_model_drops_the_kept_state()
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny"));
        using var ids = tensor(new long[] { 5, 9, 17, 4 }, [1, 4]);
        var cfg = Static with { MaxNewTokens = 6, EosTokenIds = [] };
        using var before = model.Generate(ids, null, cfg);
        // a parameter replaced by another tensor (as moving / casting / adapter surgery do): the kept cache must not
        // be trusted, and the new weights must be used
        using (no_grad())
        {
            var emb = model.GetInputEmbeddings();
            emb.weight = new TorchSharp.Modules.Parameter(emb.weight!.detach().mul(-1.0f).DetachFromDisposeScope(), false);
        }
        using var after = model.Generate(ids, null, cfg);
        using var dyn = model.Generate(ids, null, cfg with { CacheImplementation = GenerationConfig.CacheDynamic });
        TensorAssert.Equal(dyn, after, "after replacing the embedding");
    }

    [Fact]
    public void The_kept_state_is_dropped_when_adapters_or_the_training_flag_change()
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny"));
        using var ids = tensor(new long[] { 5, 9, 17, 4 }, [1, 4]);
        var cfg = Static with { MaxNewTokens = 4, EosTokenIds = [] };
        var holder = model.StaticDecodeHolder;
        model.Generate(ids, null, cfg).Dispose();
        var first = holder.Kept;
        Assert.NotNull(first);
        model.Generate(ids, null, cfg).Dispose();
        Assert.Same(first, holder.Kept);                                                   // unchanged model: reused
        // LoRA injected into this model in place (new parameter objects): dropped, and the adapted model decodes
        using var peft = PeftModel.GetPeftModel(model, new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM, InitLoraWeights = false });
        using var adapted = model.Generate(ids, null, cfg);
        var second = holder.Kept;
        Assert.NotSame(first, second);
        using var adaptedDynamic = model.Generate(ids, null, cfg with { CacheImplementation = GenerationConfig.CacheDynamic });
        TensorAssert.Equal(adaptedDynamic, adapted, "LoRA-injected model, static vs dynamic");
        // the adapters switched off (same parameters, other control flow): dropped
        foreach (var layer in model.modules().OfType<ITunerLayer>()) layer.DisableAdapters = true;
        model.Generate(ids, null, cfg).Dispose();
        Assert.NotSame(second, holder.Kept);
        var third = holder.Kept;
        model.train();
        model.eval();                                                                      // same flag as before: kept
        model.Generate(ids, null, cfg).Dispose();
        Assert.Same(third, holder.Kept);
    }

    [Fact]
    public void A_peft_model_with_a_layer_injecting_method_decodes_static_and_prompt_learning_stays_dynamic()
    {
        using var ids = tensor(new long[] { 5, 9, 17, 4 }, [1, 4]);
        var cfg = Static with { MaxNewTokens = 6, EosTokenIds = [] };
        // LoRA: the PeftModel's forward is the wrapped model's forward with the adapters inside it; static decoding
        // uses the wrapped model's holder and gives the dynamic path's tokens
        using (var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny")))
        using (var peft = PeftModel.GetPeftModel(model, new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM, InitLoraWeights = false }))
        {
            peft.eval();
            using var st = peft.Generate(ids, null, cfg);
            Assert.NotNull(model.StaticDecodeHolder.Kept);
            using var dyn = peft.Generate(ids, null, cfg with { CacheImplementation = GenerationConfig.CacheDynamic });
            TensorAssert.Equal(dyn, st, "PeftModel (LoRA): static vs dynamic");
        }
        // prompt tuning prepends virtual tokens through its step hook: refused by "static", dynamic under "auto"
        using (var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny")))
        using (var peft = PeftModel.GetPeftModel(model, new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2 }))
        {
            peft.eval();
            var e = Assert.Throws<NotSupportedException>(() => peft.Generate(ids, null, cfg));
            Assert.Contains("prompt learning", e.Message);
            Assert.Null(model.StaticDecodeHolder.Kept);
        }
    }

    [Fact]
    public void Static_is_rejected_where_it_cannot_apply_and_auto_on_cpu_is_dynamic()
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("gpt2-tiny"));
        using var ids = tensor(new long[] { 5, 9, 17, 4 }, [1, 4]);
        var beams = Assert.Throws<NotSupportedException>(() => model.Generate(ids, null, Static with { MaxNewTokens = 3, NumBeams = 2 }));
        Assert.Contains("num_beams = 2", beams.Message);
        model.train();
        var training = Assert.Throws<NotSupportedException>(() => model.Generate(ids, null, Static with { MaxNewTokens = 3 }));
        Assert.Contains("training mode", training.Message);
        model.eval();
        var bad = Assert.Throws<ArgumentException>(() => model.Generate(ids, null, new GenerationConfig { MaxNewTokens = 3, CacheImplementation = "offloaded" }));
        Assert.Contains("offloaded", bad.Message);
        using var auto = model.Generate(ids, null, new GenerationConfig { MaxNewTokens = 3 });
        Assert.Null(model.StaticDecodeHolder.ParameterDevices.FirstOrDefault());   // auto on the CPU never consulted the static path
    }

    [Fact]
    public void Sliding_window_layers_are_refused_by_static_and_left_dynamic_by_auto()
    {
        using var ids = tensor(new long[] { 5, 9, 17, 4, 8, 2 }, [1, 6]);
        var windowed = new MistralConfig { VocabSize = 50, HiddenSize = 32, IntermediateSize = 40, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, SlidingWindow = 3 };
        using var withWindow = AutoModelForCausalLM.FromConfig(windowed);
        withWindow.eval();
        var e = Assert.Throws<NotSupportedException>(() => withWindow.Generate(ids, null, Static with { MaxNewTokens = 3 }));
        Assert.Contains("sliding-window", e.Message);
        using var full = AutoModelForCausalLM.FromConfig(windowed with { SlidingWindow = null });
        full.eval();
        var cfg = new GenerationConfig { MaxNewTokens = 8, EosTokenIds = [] };
        using var dyn = full.Generate(ids, null, cfg with { CacheImplementation = GenerationConfig.CacheDynamic });
        using var st = full.Generate(ids, null, cfg with { CacheImplementation = GenerationConfig.CacheStatic });
        TensorAssert.Equal(dyn, st, "Mistral without a window: static vs dynamic");
    }

    [Fact]
    public void Cache_implementation_round_trips_through_generation_config_json()
    {
        var cfg = new GenerationConfig { MaxNewTokens = 4, CacheImplementation = GenerationConfig.CacheStatic };
        var json = cfg.ToJson();
        Assert.Contains("\"cache_implementation\": \"static\"", json);
        var back = GenerationConfig.FromJson(json);
        Assert.Equal(GenerationConfig.CacheStatic, back.CacheImplementation);
        Assert.DoesNotContain("cache_implementation", new GenerationConfig { MaxNewTokens = 4 }.ToJson());
        var merged = new GenerationConfig().MergeOver(new GenerationConfig { CacheImplementation = GenerationConfig.CacheDynamic });
        Assert.Equal(GenerationConfig.CacheDynamic, merged.CacheImplementation);
        var mine = new GenerationConfig { CacheImplementation = GenerationConfig.CacheStatic }.MergeOver(merged);
        Assert.Equal(GenerationConfig.CacheStatic, mine.CacheImplementation);
    }
}

[Collection(LeakTestCollection.Name)]
public sealed class StaticCacheLeakTests
{
    [Fact]
    public void Static_decoding_keeps_only_its_state_and_releases_it()
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny"));
        using var ids = tensor(new long[] { 5, 9, 17, 4, 8, 8 }, [2, 3]);
        using var mask = tensor(new long[] { 0, 1, 1, 1, 1, 1 }, [2, 3]);
        var cfg = new GenerationConfig { MaxNewTokens = 6, EosTokenIds = [], CacheImplementation = GenerationConfig.CacheStatic };
        model.Generate(ids, mask, cfg with { CacheImplementation = GenerationConfig.CacheDynamic }).Dispose();   // the model's own lazy tables (rotary)
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long baseline = LeakCheck.LiveTensors;
        LeakCheck.AssertNoGrowth(() => model.Generate(ids, mask, cfg).Dispose(), 5, what: "static greedy (kept state reused)");
        LeakCheck.AssertNoGrowth(() => model.Generate(ids, mask, cfg with { DoSample = true, Seed = 2 }).Dispose(), 5, what: "static sampling");
        model.ReleaseGenerationCaches();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(baseline, LeakCheck.LiveTensors);
    }
}
