using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Testing;
using Peft.Transformers;
using TorchSharp;

using static Peft.Transformers.Tests.Models.ModelTestUtil;

namespace Peft.Transformers.Tests.Models;

/// <summary>
/// Configs of other sizes than the fixtures (hidden sizes, head counts, GQA ratios, layer counts, RoPE scalings,
/// OPT post-norm with projections, GPT-2 per-layer scaling) built with FromConfig: they run, decode with the cache
/// exactly like the full forward, and survive save → reload unchanged.
/// </summary>
public sealed class HeldOutConfigTests
{
    public static TheoryData<string> Cases => new(HeldOut.Keys);

    private static readonly Dictionary<string, PretrainedConfig> HeldOut = new()
    {
        ["llama-gqa3-llama3rope"] = new LlamaConfig
        {
            VocabSize = 120, HiddenSize = 48, IntermediateSize = 80, NumHiddenLayers = 3, NumAttentionHeads = 6, NumKeyValueHeads = 2,
            MaxPositionEmbeddings = 64, PadTokenId = 0,
            RopeParameters = new RopeParameters { RopeType = "llama3", RopeTheta = 500000, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 16 },
        },
        ["llama-mqa-headdim-tied-linear-bias"] = new LlamaConfig
        {
            VocabSize = 90, HiddenSize = 32, IntermediateSize = 40, NumHiddenLayers = 1, NumAttentionHeads = 8, NumKeyValueHeads = 1, HeadDimValue = 8,
            TieWordEmbeddings = true, AttentionBias = true, MlpBias = true, PadTokenId = 0,
            RopeTheta = 1000, RopeScaling = new RopeParameters { LegacyType = "linear", Factor = 2 },
        },
        ["llama-mha"] = new LlamaConfig
        {
            VocabSize = 64, HiddenSize = 24, IntermediateSize = 36, NumHiddenLayers = 4, NumAttentionHeads = 3, PadTokenId = 0,
        },
        ["qwen2-gqa3"] = new Qwen2Config
        {
            VocabSize = 100, HiddenSize = 96, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 6, NumKeyValueHeads = 2,
            TieWordEmbeddings = true, PadTokenId = 0, RopeParameters = new RopeParameters { RopeType = "default", RopeTheta = 1000000 },
        },
        ["mistral-window3"] = new MistralConfig
        {
            VocabSize = 100, HiddenSize = 32, IntermediateSize = 48, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
            SlidingWindow = 3, PadTokenId = 0,
        },
        ["qwen2-sliding-upper-layers"] = new Qwen2Config
        {
            VocabSize = 100, HiddenSize = 32, IntermediateSize = 48, NumHiddenLayers = 3, NumAttentionHeads = 4, NumKeyValueHeads = 2,
            UseSlidingWindow = true, SlidingWindow = 4, MaxWindowLayers = 1, PadTokenId = 0,
        },
        ["gpt2-inner-scale-by-layer"] = new GPT2Config
        {
            VocabSize = 80, NEmbd = 48, NHead = 3, NLayer = 3, NInner = 100, NPositions = 40, ScaleAttnByInverseLayerIdx = true,
            ActivationFunction = "relu", PadTokenId = 0,
        },
        ["opt-postnorm-projections"] = new OPTConfig
        {
            VocabSize = 70, HiddenSize = 48, NumAttentionHeads = 6, FfnDim = 96, NumHiddenLayers = 3, MaxPositionEmbeddings = 40,
            WordEmbedProjDim = 32, DoLayerNormBefore = false, PadTokenId = 1,
        },
        ["opt-untied-nobias"] = new OPTConfig
        {
            VocabSize = 70, HiddenSize = 32, NumAttentionHeads = 2, FfnDim = 50, NumHiddenLayers = 2, MaxPositionEmbeddings = 40,
            EnableBias = false, TieWordEmbeddings = false, ActivationFunction = "gelu", PadTokenId = 1,
        },
    };

    private static (torch.Tensor Ids, torch.Tensor Mask) LeftPadded(int vocab, int pad)
    {
        torch.random.manual_seed(7);
        var ids = torch.randint(2, vocab, [2, 9], dtype: torch.ScalarType.Int64);
        var mask = torch.ones([2, 9], dtype: torch.ScalarType.Int64);
        mask[1, ..3] = torch.tensor(0L);
        ids[1, ..3] = torch.tensor((long)pad);
        return (ids, mask);
    }

    private static int Vocab(PretrainedConfig c) => c switch
    {
        RotaryDecoderConfig r => r.VocabSize,
        GPT2Config g => g.VocabSize,
        OPTConfig o => o.VocabSize,
        _ => throw new ArgumentException(c.ModelType),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Causal_lm_runs_caches_and_round_trips(string name)
    {
        using var scope = torch.NewDisposeScope();
        var config = HeldOut[name];
        using var model = AutoModelForCausalLM.FromConfig(config);
        model.eval();
        int vocab = Vocab(config);
        var (ids, mask) = LeftPadded(vocab, config.PadTokenId ?? 0);

        var o = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask, Labels = ids });
        Assert.Equal(new long[] { 2, 9, vocab }, o.Logits!.shape);
        Assert.True(o.Logits.isfinite().all().item<bool>(), $"{name}: non-finite logits");
        Assert.True(o.Loss!.item<float>() > 0);

        // incremental decoding with the cache equals the full forward at real positions
        using var cache = new KeyValueCache();
        var pieces = new List<torch.Tensor> { model.forward(new ModelInput { InputIds = ids.narrow(1, 0, 5), AttentionMask = mask.narrow(1, 0, 5), PastKeyValues = cache }).Logits! };
        for (long i = 5; i < 9; i++)
            pieces.Add(model.forward(new ModelInput { InputIds = ids.narrow(1, i, 1), AttentionMask = mask.narrow(1, 0, i + 1), PastKeyValues = cache }).Logits!);
        TensorAssert.Close(o.Logits, torch.cat(pieces, 1), 1e-4, mask, $"{name} cache");

        // without position ids the positions are HF's default (arange(past, past + T); OPT: from the mask)
        var explicitDefault = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask, PositionIds = HfDefaultPositionIds(config.ModelType, mask, 0, 9) }).Logits!;
        TensorAssert.Close(explicitDefault, o.Logits, 1e-6, null, $"{name} default positions");

        // with generate's positions the left-padded row equals the same tokens unpadded
        var generation = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask, PositionIds = GenerationPositionIds(mask, 9) }).Logits!;
        var alone = model.forward(new ModelInput { InputIds = ids[1].narrow(0, 3, 6).unsqueeze(0) }).Logits!;
        TensorAssert.Close(alone[0], generation[1].narrow(0, 3, 6), 1e-4, null, $"{name} left padding");

        using var tmp = new TempDir();
        model.SavePretrained(tmp.Path);
        using var again = AutoModelForCausalLM.FromPretrained(tmp.Path);
        Assert.Equal(config.GetType(), again.Config.GetType());
        Assert.Empty(again.MissingKeys);
        Assert.Empty(again.UnexpectedKeys);
        var o2 = again.forward(new ModelInput { InputIds = ids, AttentionMask = mask });
        TensorAssert.Close(o.Logits, o2.Logits!, 0, null, $"{name} reload");
        Assert.Equal(model.NumParameters(), again.NumParameters());

        using var f = SafetensorsFile.Open(tmp.File("model.safetensors"));
        Assert.Equal(config.TieWordEmbeddings, !f.Contains("lm_head.weight"));
    }

    [Fact]
    public void Sliding_window_masks_old_keys_and_equals_llama_when_wide()
    {
        using var scope = torch.NewDisposeScope();
        // one layer, window 3: the token at position 0 reaches positions 0..2 only (HF: kv_idx > q_idx − window)
        var one = new MistralConfig { VocabSize = 50, HiddenSize = 32, IntermediateSize = 40, NumHiddenLayers = 1, NumAttentionHeads = 4, NumKeyValueHeads = 2, SlidingWindow = 3 };
        using (var single = AutoModelForCausalLM.FromConfig(one))
        {
            var a = torch.tensor(new long[] { 5, 6, 7, 8, 9, 10, 11 }).unsqueeze(0);
            var b = torch.tensor(new long[] { 40, 6, 7, 8, 9, 10, 11 }).unsqueeze(0);
            var diff = (single.forward(new ModelInput { InputIds = a }).Logits! - single.forward(new ModelInput { InputIds = b }).Logits!).abs().amax([0, 2]);
            for (int i = 0; i < 7; i++)
                Assert.True(i < 3 ? diff[i].item<float>() > 1e-4 : diff[i].item<float>() == 0f, $"position {i}: change {diff[i].item<float>()}");
        }

        var mistral = new MistralConfig { VocabSize = 50, HiddenSize = 32, IntermediateSize = 40, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, SlidingWindow = 64 };
        var llama = new LlamaConfig { VocabSize = 50, HiddenSize = 32, IntermediateSize = 40, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2 };
        using var m = AutoModelForCausalLM.FromConfig(mistral);
        using var l = AutoModelForCausalLM.FromConfig(llama);
        using var tmp = new TempDir();
        m.SavePretrained(tmp.Path);
        l.LoadWeights(tmp.Path);
        var ids = torch.randint(0, 50, [2, 10], dtype: torch.ScalarType.Int64);
        var wide = m.forward(new ModelInput { InputIds = ids }).Logits!;
        TensorAssert.Close(l.forward(new ModelInput { InputIds = ids }).Logits!, wide, 1e-5, null, "mistral wide window == llama");
        using var narrow = AutoModelForCausalLM.FromConfig(mistral with { SlidingWindow = 2 });
        narrow.LoadWeights(tmp.Path);
        var n = narrow.forward(new ModelInput { InputIds = ids }).Logits!;
        TensorAssert.Close(wide.narrow(1, 0, 2), n.narrow(1, 0, 2), 1e-5, null, "first positions see the same keys");
        Assert.True((wide - n).abs().max().item<float>() > 1e-3, "a window of 2 must change later positions");
    }

    [Fact]
    public void Opt_post_norm_with_projections_has_hf_keys()
    {
        using var model = AutoModelForCausalLM.FromConfig(HeldOut["opt-postnorm-projections"]);
        var sd = model.state_dict();
        Assert.Equal([32L, 48L], sd["model.decoder.project_out.weight"].shape);
        Assert.Equal([48L, 32L], sd["model.decoder.project_in.weight"].shape);
        Assert.Equal([70L, 32L], sd["model.decoder.embed_tokens.weight"].shape);
        Assert.Equal([42L, 48L], sd["model.decoder.embed_positions.weight"].shape);
        Assert.DoesNotContain("model.decoder.final_layer_norm.weight", sd.Keys);
        Assert.DoesNotContain("lm_head.weight", sd.Keys);
    }

    [Fact]
    public void Gqa_projection_shapes_follow_head_counts()
    {
        using var model = AutoModelForCausalLM.FromConfig(HeldOut["llama-mqa-headdim-tied-linear-bias"]);
        var sd = model.state_dict();
        Assert.Equal([64L, 32L], sd["model.layers.0.self_attn.q_proj.weight"].shape);
        Assert.Equal([8L, 32L], sd["model.layers.0.self_attn.k_proj.weight"].shape);
        Assert.Equal([8L], sd["model.layers.0.self_attn.v_proj.bias"].shape);
        Assert.Equal([32L, 64L], sd["model.layers.0.self_attn.o_proj.weight"].shape);
        Assert.Equal([40L], sd["model.layers.0.mlp.up_proj.bias"].shape);
        Assert.Equal(new TransformerDimensions(1, 8, 1, 32, 8), model.Dimensions);
    }

    [Fact]
    public void Bert_heads_of_another_size_run_and_round_trip()
    {
        using var scope = torch.NewDisposeScope();
        var config = new BertConfig { VocabSize = 50, HiddenSize = 48, NumAttentionHeads = 3, NumHiddenLayers = 3, IntermediateSize = 80, MaxPositionEmbeddings = 32 };
        config = (BertConfig)config.WithNumLabels(4);
        var ids = torch.randint(1, 50, [2, 7], dtype: torch.ScalarType.Int64);
        var mask = torch.ones([2, 7], dtype: torch.ScalarType.Int64);
        mask[0, 5..] = torch.tensor(0L);
        foreach (var task in new[] { ModelTask.Base, ModelTask.SequenceClassification, ModelTask.TokenClassification, ModelTask.QuestionAnswering, ModelTask.MaskedLM })
        {
            using var model = ModelFactory.FromConfig(config, task);
            model.eval();
            var o = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask });
            var main = o.Logits ?? o.StartLogits ?? o.LastHiddenState!;
            using var tmp = new TempDir();
            model.SavePretrained(tmp.Path);
            using var again = ModelFactory.FromPretrained(tmp.Path, task);
            Assert.Empty(again.MissingKeys);
            Assert.Empty(again.UnexpectedKeys);
            var o2 = again.forward(new ModelInput { InputIds = ids, AttentionMask = mask });
            TensorAssert.Close(main, o2.Logits ?? o2.StartLogits ?? o2.LastHiddenState!, 0, null, $"bert {task}");
        }
    }
}
