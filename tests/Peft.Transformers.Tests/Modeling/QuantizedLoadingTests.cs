using Peft.Core.Quantization;
using Peft.Testing;
using Peft.Transformers.Tests.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Modeling;

/// <remarks>Random-init models draw from torch's process-wide generator: run alone so the seeded init is reproducible.</remarks>
[Collection(Peft.Transformers.Tests.Training.GlobalRngCollection.Name)]
public class QuantizedLoadingTests
{
    private static double Cosine(Tensor a, Tensor b, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var m = mask.to_type(ScalarType.Bool).unsqueeze(-1).expand_as(a);
        var x = a.masked_select(m).to_type(ScalarType.Float64);
        var y = b.masked_select(m).to_type(ScalarType.Float64);
        return nn.functional.cosine_similarity(x, y, 0).item<double>();
    }

    private static BitsAndBytesConfig Bnb(string mode) => mode == "int8"
        ? new BitsAndBytesConfig { LoadIn8Bit = true }
        : new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = mode, Bnb4BitUseDoubleQuant = true };

    /// <summary>
    /// The 4-bit model computes exactly the float32 model whose linear weights are replaced by their
    /// dequantisation: loading, placement and forward add no error beyond the codec's rounding. (8-bit layers also
    /// round the activations, as bnb's LLM.int8 does: see <see cref="Int8LayersHoldTheCheckpointWeightsQuantizedAndTheConfigThreshold"/>
    /// and the layer-level tests in Peft.Core.Tests.)
    /// </summary>
    [Theory]
    [InlineData("llama-tiny", "nf4")]
    [InlineData("qwen2-tiny", "nf4")]
    [InlineData("opt-tiny", "fp4")]
    [InlineData("gpt2-tiny", "nf4")]
    public void QuantizedFixtureEqualsFloat32ModelWithDequantisedWeights(string name, string mode)
    {
        using var scope = NewDisposeScope();
        using var q = ModelTestUtil.Load(name, new FromPretrainedOptions { Quantization = Bnb(mode) });
        using var f = ModelTestUtil.Load(name);
        var fModules = f.named_modules().ToDictionary(nm => nm.name, nm => nm.module);
        using (no_grad())
        {
            foreach (var (path, module) in q.named_modules())
            {
                if (module is not IQuantizedLinear ql) continue;
                var w = ql.DequantizeWeight(ScalarType.Float32);
                var target = fModules[path].named_parameters(recurse: false).First(p => p.name == "weight").parameter;
                target.copy_(fModules[path] is Peft.Core.Modules.Conv1D ? w.t() : w);
            }
        }
        var r = ModelTestUtil.Reference(name);
        var input = ModelTestUtil.ReferenceInput(name, r);
        var expected = f.forward(input).Logits!;
        var actual = q.forward(input).Logits!;
        TensorAssert.Close(expected, actual, 2e-4, r["attention_mask"], $"{name} {mode}");
    }

    /// <summary>
    /// Every 8-bit layer of a loaded fixture holds bnb's <c>Int8Params</c> of the checkpoint weight ([out, in]; GPT-2's
    /// Conv1D transposed first, as transformers does) and the config's <c>llm_int8_threshold</c>.
    /// </summary>
    [Theory]
    [InlineData("llama-tiny", 6.0)]
    [InlineData("gpt2-tiny", 0.0)]
    public void Int8LayersHoldTheCheckpointWeightsQuantizedAndTheConfigThreshold(string name, double threshold)
    {
        using var scope = NewDisposeScope();
        using var q = ModelTestUtil.Load(name, new FromPretrainedOptions { Quantization = new BitsAndBytesConfig { LoadIn8Bit = true, LlmInt8Threshold = threshold } });
        using var f = ModelTestUtil.Load(name);
        var fModules = f.named_modules().ToDictionary(nm => nm.name, nm => nm.module);
        int count = 0;
        foreach (var (path, module) in q.named_modules())
        {
            if (module is not Linear8bit l8) continue;
            var w = fModules[path].named_parameters(recurse: false).First(p => p.name == "weight").parameter;
            var (cb, scb) = Int8Codec.Quantize(fModules[path] is Peft.Core.Modules.Conv1D ? w.t() : w);
            TensorAssert.Equal(cb, l8.weight, $"{path} CB");
            TensorAssert.Close(scb, l8.SCB, 0, what: $"{path} SCB");
            Assert.Equal(threshold, l8.Threshold);
            count++;
        }
        Assert.True(count > 0);
    }

    [Theory]
    [InlineData("llama", "nf4", 0.97)]
    [InlineData("qwen2", "nf4", 0.97)]
    [InlineData("llama", "int8", 0.99)]
    public void RandomModelWithHfInitInNf4KeepsCosineAbove097(string type, string mode, double bar)
    {
        using var scope = NewDisposeScope();
        var config = AutoConfig.FromJson($$"""
            {"model_type":"{{type}}","vocab_size":512,"hidden_size":256,"intermediate_size":688,"num_hidden_layers":4,
             "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":128,"tie_word_embeddings":false,"dtype":"float32"}
            """, "test/config.json");
        using var tmp = new TempDir();
        manual_seed(5);
        using (var fresh = AutoModelForCausalLM.FromConfig(config)) fresh.SavePretrained(tmp.Path);
        using var f = AutoModelForCausalLM.FromPretrained(tmp.Path);
        using var q = AutoModelForCausalLM.FromPretrained(tmp.Path, new FromPretrainedOptions { Quantization = Bnb(mode) });
        var ids = randint(0, 512, [2, 24], generator: new Generator(9));
        var mask = ones(2, 24, dtype: ScalarType.Int64);
        var input = new Peft.Core.ModelInput { InputIds = ids, AttentionMask = mask };
        double cos = Cosine(f.forward(input).Logits!, q.forward(input).Logits!, mask);
        Assert.True(cos >= bar, $"{type} {mode}: cosine {cos:F4} < {bar}");
    }

    /// <summary>
    /// transformers 5's selection: with llm_int8_skip_modules given, only those are kept (HF's
    /// get_modules_to_not_convert adds the default skips only when the list is None), so "lm_head" must be listed.
    /// </summary>
    [Fact]
    public void LinearLayersAreQuantizedExceptTheHeadAndSkipModules()
    {
        var bnb = new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", LlmInt8SkipModules = ["down_proj", "lm_head"] };
        using var model = ModelTestUtil.Load("llama-tiny", new FromPretrainedOptions { Quantization = bnb });
        var kinds = model.named_modules().Where(nm => nm.module is Linear or Linear4bit).ToDictionary(nm => nm.name, nm => nm.module.GetType().Name);
        Assert.Equal("Linear", kinds["lm_head"]);
        Assert.Equal("Linear", kinds["model.layers.0.mlp.down_proj"]);
        Assert.Equal("Linear4bit", kinds["model.layers.0.self_attn.q_proj"]);
        Assert.Equal("Linear4bit", kinds["model.layers.1.mlp.gate_proj"]);
        Assert.Contains("model.layers.0.self_attn.q_proj.weight.quant_state.bitsandbytes__nf4", model.state_dict().Keys);
    }

    [Fact]
    public void WithoutSkipModulesTheOutputHeadStaysAndASkipListReplacesTheDefaults()
    {
        using var plain = ModelTestUtil.Load("llama-tiny", new FromPretrainedOptions { Quantization = new BitsAndBytesConfig { LoadIn4Bit = true } });
        Assert.IsType<Linear>(plain.named_modules().Single(nm => nm.name == "lm_head").module);
        Assert.IsType<Linear4bit>(plain.named_modules().Single(nm => nm.name == "model.layers.0.mlp.down_proj").module);
        var bnb = new BitsAndBytesConfig { LoadIn4Bit = true, LlmInt8SkipModules = ["o_proj"] };
        using var listed = ModelTestUtil.Load("llama-tiny", new FromPretrainedOptions { Quantization = bnb });
        Assert.IsType<Linear4bit>(listed.named_modules().Single(nm => nm.name == "lm_head").module);
        Assert.IsType<Linear>(listed.named_modules().Single(nm => nm.name == "model.layers.1.self_attn.o_proj").module);
    }

    /// <summary>
    /// HF 5's get_keys_to_not_convert strips only ".weight": a classification head whose last parameter is
    /// "classifier.bias" matches no module, so the head is quantised as in HF; GPT-2's Conv1D layers are quantised
    /// (HF's replace_with_bnb_linear converts nn.Linear and Conv1D, transposing the Conv1D weight first).
    /// </summary>
    [Fact]
    public void ClassificationHeadsAndGpt2Conv1DAreQuantizedAsInTransformers5()
    {
        var bnb = new BitsAndBytesConfig { LoadIn4Bit = true };
        using var bert = ModelTestUtil.Load("bert-tiny", new FromPretrainedOptions { Quantization = bnb });
        Assert.IsType<Linear4bit>(bert.named_modules().Single(nm => nm.name == "classifier").module);
        using var gpt2 = ModelTestUtil.Load("gpt2-tiny", new FromPretrainedOptions { Quantization = bnb });
        var attn = (Linear4bit)gpt2.named_modules().Single(nm => nm.name == "transformer.h.0.attn.c_attn").module;
        Assert.Equal(3 * attn.InFeatures, attn.OutFeatures);
    }

    [Fact]
    public void SkipPatternsFollowShouldConvertModule()
    {
        string[] patterns = ["lm_head", "model.layers.1", "proj"];
        Assert.True(ModelQuantizer.IsSkipped("lm_head", patterns));
        Assert.True(ModelQuantizer.IsSkipped("model.layers.1.mlp.up_proj", patterns));
        Assert.True(ModelQuantizer.IsSkipped("model.layers.10.mlp.fc1", patterns));     // regex prefix, as HF's re.match
        Assert.True(ModelQuantizer.IsSkipped("model.layers.0.self_attn.q_proj", patterns)); // suffix, as HF's endswith
        Assert.False(ModelQuantizer.IsSkipped("model.layers.0.mlp.fc1", patterns));
        var e = Assert.Throws<ArgumentException>(() => ModelQuantizer.IsSkipped("x", ["layers.(1"]));
        Assert.Contains("layers.(1", e.Message);
    }

    [Fact]
    public void RandomLlama512x4InNf4WithDoubleQuantTakesAtMost30PercentOfFloat32()
    {
        var config = AutoConfig.FromJson("""
            {"model_type":"llama","vocab_size":1000,"hidden_size":512,"intermediate_size":1376,"num_hidden_layers":4,
             "num_attention_heads":8,"num_key_value_heads":8,"max_position_embeddings":256,"tie_word_embeddings":false,"dtype":"float32"}
            """, "test/config.json");
        using var tmp = new TempDir();
        long fp32;
        using (var fresh = AutoModelForCausalLM.FromConfig(config))
        {
            fresh.SavePretrained(tmp.Path);
            fp32 = fresh.GetMemoryFootprint();
        }
        var bnb = new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitUseDoubleQuant = true };
        using var q = AutoModelForCausalLM.FromPretrained(tmp.Path, new FromPretrainedOptions { Quantization = bnb });
        long nf4 = q.GetMemoryFootprint();
        Assert.True(nf4 <= 0.30 * fp32, $"nf4 footprint {nf4} is {(double)nf4 / fp32:P1} of fp32 {fp32}");
    }

    [Fact]
    public void QuantizedModelRefusesADtypeCastAndSavesBnbLayout()
    {
        var bnb = new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitUseDoubleQuant = true };
        using var model = ModelTestUtil.Load("qwen2-tiny", new FromPretrainedOptions { Quantization = bnb });
        var e = Assert.Throws<InvalidOperationException>(() => model.to(ScalarType.BFloat16));
        Assert.Contains("quantized", e.Message);
        using var tmp = new TempDir();
        model.SavePretrained(tmp.Path);
        using var f = Peft.Core.Safetensors.SafetensorsFile.Open(tmp.File("model.safetensors"));
        Assert.Equal("U8", f.GetInfo("model.layers.0.self_attn.q_proj.weight").Dtype);
        Assert.True(f.Contains("model.layers.0.self_attn.q_proj.weight.nested_quant_map"));
        Assert.True(f.Contains("model.layers.0.self_attn.q_proj.bias"));
    }

    [Fact]
    public void InvalidBitsAndBytesConfigFailsWithTheKeyNamed()
    {
        var both = new FromPretrainedOptions { Quantization = new BitsAndBytesConfig { LoadIn4Bit = true, LoadIn8Bit = true } };
        Assert.Contains("load_in_8bit", Assert.Throws<ArgumentException>(() => ModelTestUtil.Load("llama-tiny", both)).Message);
        var type = new FromPretrainedOptions { Quantization = new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "int4" } };
        Assert.Contains("int4", Assert.Throws<ArgumentException>(() => ModelTestUtil.Load("llama-tiny", type)).Message);
        var storage = new FromPretrainedOptions { Quantization = new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantStorage = ScalarType.BFloat16 } };
        Assert.Contains("bnb_4bit_quant_storage", Assert.Throws<ArgumentException>(() => ModelTestUtil.Load("llama-tiny", storage)).Message);
        var threshold = new FromPretrainedOptions { Quantization = new BitsAndBytesConfig { LoadIn8Bit = true, LlmInt8Threshold = -2 } };
        var e = Assert.Throws<ArgumentException>(() => ModelTestUtil.Load("llama-tiny", threshold));
        Assert.Contains("llm_int8_threshold", e.Message);
        Assert.Contains("-2", e.Message);
    }
}
