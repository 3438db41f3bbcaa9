using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Core.Quantization;
using Peft.Testing;
using Peft.Transformers.Tests.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Modeling;

/// <summary>
/// Folders saved quantised: <c>SavePretrained</c> writes bnb's serialised tensors plus HF's <c>quantization_config</c>,
/// and <c>FromPretrained</c> of such a folder rebuilds the quantised layers from those tensors (no float weights).
/// </summary>
public class PrequantizedLoadingTests
{
    [Theory]
    [InlineData("llama-tiny", "nf4-dq")]
    [InlineData("gpt2-tiny", "hf-default")]
    [InlineData("qwen2-tiny", "int8")]
    [InlineData("bert-tiny", "nf4")]
    public void SavedQuantizedFolderLoadsBackBitIdentical(string name, string mode)
    {
        using var scope = NewDisposeScope();
        var bnb = QuantizedFixtureCosineTests.Config(mode);
        using var q = ModelTestUtil.Load(name, new FromPretrainedOptions { Quantization = bnb });
        using var tmp = new TempDir();
        q.SavePretrained(tmp.Path);

        var qc = JsonNode.Parse(File.ReadAllText(tmp.File("config.json")))!["quantization_config"]!.AsObject();
        Assert.Equal("bitsandbytes", (string?)qc["quant_method"]);
        Assert.Equal(bnb.LoadIn4Bit, (bool)qc["load_in_4bit"]!);
        Assert.Equal(bnb.LoadIn8Bit, (bool)qc["_load_in_8bit"]!);
        Assert.Equal(bnb.Bnb4BitQuantType, (string?)qc["bnb_4bit_quant_type"]);
        Assert.Equal(bnb.Bnb4BitUseDoubleQuant, (bool)qc["bnb_4bit_use_double_quant"]!);
        Assert.Equal("float32", (string?)qc["bnb_4bit_compute_dtype"]);
        Assert.Equal("uint8", (string?)qc["bnb_4bit_quant_storage"]);
        Assert.Null(qc["llm_int8_skip_modules"]);

        using var back = ModelFactory.FromPretrained(tmp.Path, ModelTestUtil.TaskOf(name));
        Assert.Empty(back.UnexpectedKeys);
        Assert.Empty(back.MissingKeys);
        var a = q.state_dict();
        var b = back.state_dict();
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (k, v) in a) TensorAssert.Equal(v, b[k], k);
        Assert.Equal(q.modules().Count(m => m is IQuantizedLinear), back.modules().Count(m => m is IQuantizedLinear));
        var r = ModelTestUtil.Reference(name);
        var input = ModelTestUtil.ReferenceInput(name, r);
        var x = q.forward(input);
        var y = back.forward(input);
        TensorAssert.Equal(x.Logits ?? x.StartLogits!, y.Logits ?? y.StartLogits!, $"{name} {mode} logits");
    }

    /// <summary>HF writes <c>llm_int8_threshold</c> as a Python float (6.0 by default); it round-trips into every 8-bit layer.</summary>
    [Fact]
    public void Int8ThresholdIsSavedAsHfWritesItAndLoadsBack()
    {
        using var scope = NewDisposeScope();
        foreach (var (threshold, text) in new[] { (6.0, "6.0"), (4.5, "4.5") })
        {
            var bnb = new BitsAndBytesConfig { LoadIn8Bit = true, LlmInt8Threshold = threshold };
            using var q = ModelTestUtil.Load("opt-tiny", new FromPretrainedOptions { Quantization = bnb });
            using var tmp = new TempDir();
            q.SavePretrained(tmp.Path);
            var qc = JsonNode.Parse(File.ReadAllText(tmp.File("config.json")))!["quantization_config"]!;
            Assert.Equal(text, qc["llm_int8_threshold"]!.ToJsonString());
            using var back = ModelFactory.FromPretrained(tmp.Path, ModelTestUtil.TaskOf("opt-tiny"));
            var layers = back.modules().OfType<Linear8bit>().ToList();
            Assert.NotEmpty(layers);
            Assert.All(layers, l => Assert.Equal(threshold, l.Threshold));
        }
    }

    [Fact]
    public void QLoraQuantizedInPlaceSavesItsConfigAndADequantizedModelDropsIt()
    {
        using var model = ModelTestUtil.Load("opt-tiny");
        new QLoraConfig { TargetModules = ["q_proj"], SkipModules = ["fc2", "lm_head"] }.PrepareModel(model);
        using var tmp = new TempDir();
        model.SavePretrained(tmp.Path);
        var qc = JsonNode.Parse(File.ReadAllText(tmp.File("config.json")))!["quantization_config"]!;
        Assert.Equal("nf4", (string?)qc["bnb_4bit_quant_type"]);
        Assert.True((bool)qc["bnb_4bit_use_double_quant"]!);
        using (var back = AutoModelForCausalLM.FromPretrained(tmp.Path))
        {
            Assert.IsType<Linear>(back.named_modules().Single(nm => nm.name == "model.decoder.layers.0.fc2").module);
            Assert.IsType<Linear4bit>(back.named_modules().Single(nm => nm.name == "model.decoder.layers.0.fc1").module);
            Assert.Empty(back.UnexpectedKeys);
        }
        ModelQuantizer.Dequantize(model);
        using var tmp2 = new TempDir();
        model.SavePretrained(tmp2.Path);
        Assert.Null(JsonNode.Parse(File.ReadAllText(tmp2.File("config.json")))!["quantization_config"]);
    }

    [Fact]
    public void BadSavedQuantizationFailsNamingTheFileAndKey()
    {
        using var q = ModelTestUtil.Load("llama-tiny", new FromPretrainedOptions { Quantization = QuantizedFixtureCosineTests.Config("nf4") });
        using var tmp = new TempDir();
        q.SavePretrained(tmp.Path);
        var cfgPath = tmp.File("config.json");
        var original = File.ReadAllText(cfgPath);

        var gptq = JsonNode.Parse(original)!;
        gptq["quantization_config"]!["quant_method"] = "gptq";
        File.WriteAllText(cfgPath, gptq.ToJsonString());
        Assert.Contains("gptq", Assert.Throws<NotSupportedException>(() => AutoModelForCausalLM.FromPretrained(tmp.Path)).Message);

        var dtype = JsonNode.Parse(original)!;
        dtype["quantization_config"]!["bnb_4bit_compute_dtype"] = "int4";
        File.WriteAllText(cfgPath, dtype.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => AutoModelForCausalLM.FromPretrained(tmp.Path));
        Assert.Contains("bnb_4bit_compute_dtype", e.Message);
        Assert.Contains("config.json", e.Message);

        // a folder that claims quantisation but stores a layer's state incompletely: the layer is named
        File.WriteAllText(cfgPath, original);
        var st = tmp.File("model.safetensors");
        Dictionary<string, Tensor> all;
        using (var f = Peft.Core.Safetensors.SafetensorsFile.Open(st)) all = f.ReadAll();
        all.Remove("model.layers.0.self_attn.q_proj.weight.absmax");
        Peft.Core.Safetensors.SafetensorsWriter.Save(st, all.Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value)).ToList(), new Dictionary<string, string> { ["format"] = "pt" });
        var missing = Assert.Throws<InvalidDataException>(() => AutoModelForCausalLM.FromPretrained(tmp.Path));
        Assert.Contains("model.layers.0.self_attn.q_proj", missing.Message);
    }
}
