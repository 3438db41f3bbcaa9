using Peft.Testing;
using TorchSharp;
using Peft.Transformers.Tests.Models;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Modeling;

public class StreamingLoadTests
{
    [Theory]
    [InlineData("llama-tiny")]
    [InlineData("gpt2-tiny")]
    public void DtypeAutoFollowsTheConfigAndExplicitDtypeWins(string name)
    {
        using var tmp = new TempDir();
        using (var bf = ModelTestUtil.Load(name, new FromPretrainedOptions { Dtype = ScalarType.BFloat16 }))
        {
            Assert.All(bf.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
            bf.SavePretrained(tmp.Path);                 // config.json now says "dtype": "bfloat16"
        }
        using var auto = ModelFactory.FromPretrained(tmp.Path, ModelTestUtil.TaskOf(name));
        Assert.All(auto.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        using var forced = ModelFactory.FromPretrained(tmp.Path, ModelTestUtil.TaskOf(name), new FromPretrainedOptions { Dtype = ScalarType.Float32 });
        Assert.All(forced.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        using var fixture = ModelTestUtil.Load(name);
        Assert.All(fixture.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));   // the fixture config says float32
    }

    [Theory]
    [InlineData(null, null, ScalarType.BFloat16)]               // no dtype key: the first floating-point tensor's dtype
    [InlineData("float16", null, ScalarType.Float16)]           // an older config: torch_dtype
    [InlineData("float16", "float32", ScalarType.Float32)]      // both: "dtype" wins (transformers 5 writes it)
    [InlineData("auto", null, ScalarType.BFloat16)]             // "auto" in the file: the checkpoint decides
    public void DtypeAutoReadsTorchDtypeAndFallsBackToTheCheckpoint(string? torchDtype, string? dtype, ScalarType expected)
    {
        using var tmp = new TempDir();
        using (var bf = ModelTestUtil.Load("llama-tiny", new FromPretrainedOptions { Dtype = ScalarType.BFloat16 })) bf.SavePretrained(tmp.Path);
        var path = System.IO.Path.Combine(tmp.Path, "config.json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json.Remove("dtype");
        json.Remove("torch_dtype");
        if (torchDtype is not null) json["torch_dtype"] = torchDtype;
        if (dtype is not null) json["dtype"] = dtype;
        File.WriteAllText(path, json.ToJsonString());
        using var model = ModelFactory.FromPretrained(tmp.Path, ModelTask.CausalLM);
        Assert.All(model.parameters(), p => Assert.Equal(expected, p.dtype));
    }

    [Fact]
    public void NoParameterIsLeftOnTheMetaDevice()
    {
        using var model = ModelTestUtil.Load("qwen2-tiny", new FromPretrainedOptions { IgnoreMismatchedSizes = true, NumLabels = 3 });
        Assert.All(model.parameters(), p => Assert.Equal(DeviceType.CPU, p.device_type));
    }

    [Fact]
    public void MissingHeadOnAMetaBuiltModelIsMaterialisedAndInitialised()
    {
        using var clf = ModelFactory.FromPretrained(Fixtures.Model("llama-tiny"), ModelTask.SequenceClassification, new FromPretrainedOptions { NumLabels = 3 });
        Assert.Contains("score.weight", clf.MissingKeys);
        var w = clf.named_parameters().Single(p => p.name == "score.weight").parameter;
        Assert.Equal(DeviceType.CPU, w.device_type);
        double std = w.std().item<float>();
        Assert.InRange(std, 0.005, 0.05);                  // HF init N(0, 0.02), not meta garbage or zeros
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("auto")]
    public void DeviceMapPlacesTheModel(string map)
    {
        using var model = ModelTestUtil.Load("llama-tiny", new FromPretrainedOptions { DeviceMap = map });
        var expected = DeviceMap.Resolve(map, null);
        Assert.All(model.parameters(), p => Assert.Equal(expected.type, p.device_type));
        Assert.Throws<ArgumentException>(() => DeviceMap.Resolve("tpu", null));
        Assert.Throws<ArgumentException>(() => DeviceMap.Resolve("cpu", CPU));
        Assert.Equal(1, DeviceMap.Resolve("cuda:1", null).index);
    }
}
