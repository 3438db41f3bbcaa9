using System.Text.Json.Nodes;
using Peft.Core.Safetensors;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners;

public class LoraErrorTests
{
    [Fact]
    public void TargetMatchingNothingListsModuleNames()
    {
        var ex = Assert.Throws<ArgumentException>(() => PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig { TargetModules = ["q_proj", "v_proj"] }));
        Assert.Contains("q_proj", ex.Message);
        Assert.Contains("lin0", ex.Message);
        Assert.Contains("classifier", ex.Message);
    }

    [Fact]
    public void NoDefaultTargetsForAPlainModule()
    {
        var ex = Assert.Throws<ArgumentException>(() => PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig()));
        Assert.Contains("target_modules", ex.Message);
    }

    [Fact]
    public void UnsupportedTargetTypeIsNamed()
    {
        var ex = Assert.Throws<NotSupportedException>(() => PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig { TargetModules = ["act"] }));
        Assert.Contains("seq.act", ex.Message);
    }

    [Fact]
    public void ShapeMismatchNamesTheKeyAndBothShapes()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig { R = 4, TargetModules = ["lin0"] });
        pm.SavePretrained(dir.Path);
        var path = Path.Combine(dir.Path, "adapter_config.json");
        var node = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        node["r"] = 8;
        File.WriteAllText(path, node.ToJsonString());
        var ex = Assert.Throws<InvalidDataException>(() => PeftModel.FromPretrained(new TinyMlp(), dir.Path));
        Assert.Contains("base_model.model.lin0.lora_A.weight", ex.Message);
        Assert.Contains("[4, 16]", ex.Message);
        Assert.Contains("[8, 16]", ex.Message);
    }

    [Fact]
    public void UnexpectedAndMissingKeysAreNamed()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig { R = 4, TargetModules = ["lin0"] });
        pm.SavePretrained(dir.Path);
        var file = Path.Combine(dir.Path, "adapter_model.safetensors");
        Dictionary<string, Tensor> tensors;
        using (var f = SafetensorsFile.Open(file)) tensors = f.ReadAll();
        tensors["base_model.model.nothere.lora_A.weight"] = zeros(4, 16);
        SafetensorsWriter.Save(file, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var ex = Assert.Throws<InvalidDataException>(() => PeftModel.FromPretrained(new TinyMlp(), dir.Path));
        Assert.Contains("base_model.model.nothere.lora_A.weight", ex.Message);

        tensors.Remove("base_model.model.nothere.lora_A.weight");
        tensors.Remove("base_model.model.lin0.lora_B.weight");
        SafetensorsWriter.Save(file, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var missing = Assert.Throws<InvalidDataException>(() => PeftModel.FromPretrained(new TinyMlp(), dir.Path));
        Assert.Contains("base_model.model.lin0.lora_B.weight", missing.Message);
    }

    [Fact]
    public void SafeMergeRejectsNonFiniteAdaptersNamingThem()
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig { R = 2, TargetModules = ["lin0"] }, "broken");
        var layer = (LoraLinear)pm.Tuner.TunerLayers().Single().Layer;
        using (no_grad()) layer.LoraB("broken").weight.fill_(double.NaN);
        var ex = Assert.Throws<InvalidOperationException>(() => pm.MergeAdapter(safeMerge: true));
        Assert.Contains("broken", ex.Message);
        Assert.False(layer.Merged);
    }

    [Fact]
    public void Conv1DForcesFanInFanOutWithAWarning()
    {
        var pm = PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig { TargetModules = ["conv", "lin0"], FanInFanOut = false });
        Assert.Contains(pm.Warnings, w => w.Contains("conv") && w.Contains("fan_in_fan_out"));
        Assert.DoesNotContain(pm.Warnings, w => w.Contains("lin0"));
        Assert.True(((LoraLinear)ModuleSurgeryGet(pm, "conv")).FanInFanOut);
    }

    private static torch.nn.Module ModuleSurgeryGet(PeftModel pm, string path) => Peft.Core.Tuners.ModuleSurgery.GetSubmodule(pm.GetBaseModel(), path);

    [Fact]
    public void UnloadedModelRefusesFurtherUse()
    {
        var pm = PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig { TargetModules = ["lin0"] });
        var baseModel = pm.Unload();
        Assert.DoesNotContain(baseModel.named_parameters(), p => p.name.Contains("lora_"));
        Assert.Throws<InvalidOperationException>(() => pm.SetAdapter("default"));
    }
}

public class LoraPeftFileQuirkTests
{
    [Fact]
    public void BiasAllFilesWithWrapperBiasKeysAsPeftWritesThemLoad()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var baseModel = new TinyMlp();
        var fresh = TinyMlp.CopyOf(baseModel);
        var pm = PeftModel.GetPeftModel(baseModel, new LoraConfig { R = 2, TargetModules = ["lin0"], Bias = LoraBias.All, ModulesToSave = ["classifier"], InitLoraWeights = false });
        pm.eval();
        using (no_grad()) foreach (var (n, p) in pm.named_parameters()) if (n.EndsWith("bias") && p.requires_grad) p.add_(0.5);
        var expected = pm.ForwardTensor(TinyMlp.Input());
        pm.SavePretrained(dir.Path);
        var file = Path.Combine(dir.Path, "adapter_model.safetensors");
        Dictionary<string, Tensor> tensors;
        using (var f = SafetensorsFile.Open(file)) tensors = f.ReadAll();
        // Python PEFT's bias="all" files also hold the wrapper's internal bias keys (adapter name stripped).
        tensors["base_model.model.classifier.modules_to_save.bias"] = tensors["base_model.model.classifier.bias"];
        tensors["base_model.model.classifier.original_module.bias"] = pm.state_dict()["base_model.model.classifier.original_module.bias"];
        SafetensorsWriter.Save(file, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var loaded = PeftModel.FromPretrained(fresh, dir.Path);
        TensorAssert.Close(expected, loaded.ForwardTensor(TinyMlp.Input()), 1e-6, what: "bias=all with wrapper keys");
    }
}
