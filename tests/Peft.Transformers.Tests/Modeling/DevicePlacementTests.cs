using Peft.Core;
using Peft.Testing;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Modeling;

/// <summary>
/// Layer placement on the CPU: a map that names every layer, the norm and the head ("cpu" twice) runs the
/// device-moving code path of BackbonePass and the heads and must leave logits and LoRA gradients unchanged; the GPU
/// version (cuda:0 / cuda:1) is bench <c>split_logits</c> in bench/multi-gpu.sh.
/// </summary>
public class DevicePlacementTests
{
    [Theory]
    [InlineData("llama-tiny", "model.layers.", "model.norm")]
    [InlineData("opt-tiny", "model.decoder.layers.", "model.decoder.final_layer_norm")]
    public void SplittingOverDevicesKeepsLogitsAndGradients(string name, string layerPrefix, string norm)
    {
        var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name));
        manual_seed(3);
        using var pm = PeftModel.GetPeftModel(model, new LoraConfig { R = 2, LoraAlpha = 4, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM });
        using var ids = randint(3, 100, [2, 9], dtype: ScalarType.Int64);
        var (logits, grads) = Pass(pm, ids);
        int layers = model.named_modules().Count(m => m.name.StartsWith(layerPrefix, StringComparison.Ordinal) && !m.name[layerPrefix.Length..].Contains('.'));
        Assert.True(layers >= 2);
        var map = new Dictionary<string, string> { ["lm_head"] = "cpu", [norm] = "cpu", [""] = "cpu" };
        for (int i = layers / 2; i < layers; i++) map[layerPrefix + i] = "cpu";
        DevicePlacement.Apply(model, map);
        var (logits2, grads2) = Pass(pm, ids);
        Assert.Equal(0, (logits - logits2).abs().max().item<float>());
        foreach (var (k, g) in grads) Assert.Equal(0, (g - grads2[k]).abs().max().item<float>());
    }

    [Fact]
    public void UnknownModulesAndDevicesAreNamed()
    {
        var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny"));
        var e = Assert.Throws<KeyNotFoundException>(() => DevicePlacement.Apply(model, new Dictionary<string, string> { ["model.layers.99"] = "cpu" }));
        Assert.Contains("'model.layers.99' names no module of", e.Message);
        var d = Assert.ThrowsAny<ArgumentException>(() => DevicePlacement.Apply(model, new Dictionary<string, string> { ["lm_head"] = "gpu7" }));
        Assert.Contains("device_map['lm_head'] = 'gpu7'", d.Message);
    }

    [Fact]
    public void FootprintByDeviceSumsParametersAndBuffers()
    {
        var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny"));
        long expected = model.parameters().Sum(p => p.numel() * p.ElementSize) + model.buffers().Sum(b => b.numel() * b.ElementSize);
        var footprint = DevicePlacement.MemoryFootprintByDevice(model);
        Assert.Equal(expected, Assert.Single(footprint).Value);
        Assert.Equal("cpu", footprint.Keys.Single().ToLowerInvariant());
    }

    private static (Tensor Logits, Dictionary<string, Tensor> Grads) Pass(PeftModel pm, Tensor ids)
    {
        pm.zero_grad();
        var output = pm.forward(new ModelInput { InputIds = ids, Labels = ids });
        output.Loss!.backward();
        var grads = pm.named_parameters().Where(p => p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        return (output.Logits!.detach().clone(), grads);
    }
}
