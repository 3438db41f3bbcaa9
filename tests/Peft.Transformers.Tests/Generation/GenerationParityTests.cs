using Peft.Core.Safetensors;
using Peft.Testing;
using Peft.Transformers.Generation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Generation;

/// <summary>
/// Token-for-token parity with transformers 5.17 <c>generate</c> on the tiny causal fixtures (references written by
/// the Python stack): greedy on a left-padded batch, greedy with repetition_penalty 1.5, and 3-beam search.
/// Each model's own generation_config.json supplies eos/pad, as in HF.
/// </summary>
public sealed class GenerationParityTests
{
    public static TheoryData<string> CausalModels => new() { "gpt2-tiny", "opt-tiny", "llama-tiny", "qwen2-tiny" };

    private static Dictionary<string, Tensor> Reference(string name)
    {
        using var f = SafetensorsFile.Open(Fixtures.Reference(name));
        return f.ReadAll();
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Greedy_left_padded_batch_matches_hf(string name)
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name));
        var r = Reference(name);
        using var o = model.Generate(r["gen_input_ids"], r["gen_attention_mask"], new GenerationConfig { MaxNewTokens = 16 });
        TensorAssert.Equal(r["greedy_output_ids"], o, $"{name} greedy");
        using var noCache = model.Generate(r["gen_input_ids"], r["gen_attention_mask"], new GenerationConfig { MaxNewTokens = 16, UseCache = false });
        TensorAssert.Equal(r["greedy_output_ids"], noCache, $"{name} greedy without cache");
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Greedy_with_repetition_penalty_matches_hf(string name)
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name));
        var r = Reference(name);
        using var o = model.Generate(r["gen_input_ids"], r["gen_attention_mask"], new GenerationConfig { MaxNewTokens = 16, RepetitionPenalty = 1.5 });
        TensorAssert.Equal(r["greedy_reppen1.5_output_ids"], o, $"{name} repetition_penalty 1.5");
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Beam_search_3_beams_matches_hf(string name)
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name));
        var r = Reference(name);
        using var mask0 = r["gen_attention_mask"][0];
        using var keep = mask0.nonzero().squeeze(1);
        using var prompt = r["gen_input_ids"][0].index_select(0, keep).unsqueeze(0);
        using var o = model.Generate(prompt, null, new GenerationConfig { MaxNewTokens = 12, NumBeams = 3 });
        TensorAssert.Equal(r["beam3_output_ids_first_prompt"], o, $"{name} beam search");
    }

    [Fact]
    public void Sampling_on_a_fixture_model_is_seeded_and_top_k_1_is_greedy()
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny"));
        var r = Reference("llama-tiny");
        var cfg = new GenerationConfig { MaxNewTokens = 16, DoSample = true, Seed = 7, TopK = 0, TopP = 0.95, Temperature = 0.9 };
        using var a = model.Generate(r["gen_input_ids"], r["gen_attention_mask"], cfg);
        using var b = model.Generate(r["gen_input_ids"], r["gen_attention_mask"], cfg);
        TensorAssert.Equal(a, b, "same seed");
        using var k1 = model.Generate(r["gen_input_ids"], r["gen_attention_mask"], cfg with { TopK = 1 });
        TensorAssert.Equal(r["greedy_output_ids"], k1, "top_k = 1");
    }

    [Fact]
    public void Generation_config_json_round_trips()
    {
        var cfg = GenerationConfig.FromFile(Fixtures.Model("opt-tiny"));
        Assert.Equal(2, cfg.EosTokenId);
        Assert.Equal(1, cfg.PadTokenId);
        Assert.Equal(2, cfg.BosTokenId);
        Assert.True(cfg.ExtensionData!.ContainsKey("transformers_version"));
        using var dir = new TempDir();
        cfg.SavePretrained(dir.Path);
        var again = GenerationConfig.FromFile(dir.File("generation_config.json"));
        Assert.Equal(cfg.EosTokenId, again.EosTokenId);
        Assert.Equal(cfg.PadTokenId, again.PadTokenId);
        Assert.Equal(cfg.ExtensionData!["transformers_version"].GetString(), again.ExtensionData!["transformers_version"].GetString());
        var multi = GenerationConfig.FromJson("""{"eos_token_id": [2, 7], "max_new_tokens": 5}""");
        Assert.Equal([2, 7], multi.EffectiveEosTokenIds);
        Assert.Contains("[", GenerationConfig.FromJson(multi.ToJson()).ToJson().Split("eos_token_id")[1][..6]);
        // explicit settings win over defaults even when they equal the library default; unset ones take the default's
        var defaults = new GenerationConfig { DoSample = true, Temperature = 0.7, TopK = 10, MaxNewTokens = 256 };
        var call = new GenerationConfig { DoSample = false, MaxLength = 30 }.MergeOver(defaults);
        Assert.False(call.DoSample);
        Assert.Equal(0.7, call.Temperature);
        Assert.Equal(10, call.TopK);
        Assert.Equal(30, call.MaxLength);
        Assert.Null(call.MaxNewTokens);
        Assert.True(new GenerationConfig().MergeOver(defaults).DoSample);
        Assert.True(GenerationConfig.FromFile(Fixtures.Model("opt-tiny")).IsExplicit(nameof(GenerationConfig.UseCache)));
        Assert.False(GenerationConfig.FromFile(Fixtures.Model("opt-tiny")).IsExplicit(nameof(GenerationConfig.DoSample)));
        var e = Assert.Throws<InvalidDataException>(() => GenerationConfig.FromJson("""{"num_beams": "three"}""", "x.json"));
        Assert.Contains("x.json", e.Message);
    }
}
