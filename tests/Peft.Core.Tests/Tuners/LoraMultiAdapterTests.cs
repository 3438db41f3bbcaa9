using Peft.Core.Safetensors;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners;

public class LoraMultiAdapterTests
{
    private static LoraConfig Cfg(int r, params string[] targets) => new() { R = r, LoraAlpha = 2 * r, TargetModules = targets, InitLoraWeights = false };

    private static Tensor Run(PeftModel pm)
    {
        using var ids = TinyMlp.Input();
        return pm.ForwardTensor(ids);
    }

    [Fact]
    public void AdaptersSwitchSaveToSubfoldersLoadAndDelete()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var baseModel = new TinyMlp();
        var fresh = TinyMlp.CopyOf(baseModel);
        var pm = PeftModel.GetPeftModel(baseModel, Cfg(4, "lin0", "fc"));
        pm.eval();
        var outDefault = Run(pm);
        pm.AddAdapter("other", Cfg(2, "fc", "lin") with { ModulesToSave = ["classifier"] });
        Assert.Equal(["default"], pm.ActiveAdapters);
        TensorAssert.Close(outDefault, Run(pm), 0, what: "adding an adapter does not activate it");
        Assert.DoesNotContain(pm.named_parameters(), p => p.name.Contains(".other.") && p.parameter.requires_grad);

        pm.SetAdapter("other");
        var outOther = Run(pm);
        Assert.False(outDefault.allclose(outOther, atol: 1e-4));
        Assert.All(pm.named_parameters().Where(p => p.name.Contains("lora_")), p => Assert.Equal(p.name.Contains(".other."), p.parameter.requires_grad));

        pm.SavePretrained(dir.Path);
        Assert.True(File.Exists(Path.Combine(dir.Path, "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(dir.Path, "other", "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(dir.Path, "other", "adapter_config.json")));
        using (var f = SafetensorsFile.Open(Path.Combine(dir.Path, "other", "adapter_model.safetensors")))
        {
            Assert.Contains("base_model.model.classifier.weight", f.Keys);
            Assert.Contains("base_model.model.layers.0.fc.lora_A.weight", f.Keys);
            Assert.DoesNotContain(f.Keys, k => k.Contains("other"));
        }

        pm.SetAdapter("default");
        TensorAssert.Close(outDefault, Run(pm), 1e-6, what: "back to default (classifier copy of 'other' not used)");

        var loaded = PeftModel.FromPretrained(fresh, dir.Path);
        loaded.LoadAdapter(Path.Combine(dir.Path, "other"), "other");
        TensorAssert.Close(outDefault, Run(loaded), 1e-6, what: "default reloaded");
        loaded.SetAdapter("other");
        TensorAssert.Close(outOther, Run(loaded), 1e-6, what: "other reloaded");

        loaded.DeleteAdapter("other");
        Assert.Equal(["default"], loaded.ActiveAdapters);
        Assert.DoesNotContain(loaded.named_parameters(), p => p.name.Contains("other"));
        TensorAssert.Close(outDefault, Run(loaded), 1e-6, what: "after deleting other");
        Assert.Throws<ArgumentException>(() => loaded.SetAdapter("other"));
        Assert.Throws<ArgumentException>(() => loaded.AddAdapter("default", Cfg(2, "lin0")));
    }

    [Theory]
    [InlineData(CombinationType.Linear)]
    [InlineData(CombinationType.Cat)]
    [InlineData(CombinationType.Svd)]
    public void WeightedAdapterOfOneAdapterWithWeightOneReproducesIt(CombinationType combination)
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), Cfg(4, "lin0", "fc"));
        pm.eval();
        var expected = Run(pm);
        pm.AddWeightedAdapter(["default"], [1.0], "combined", combination);
        pm.SetAdapter("combined");
        TensorAssert.Close(expected, Run(pm), 1e-4, what: combination.ToString());
    }

    [Fact]
    public void CatOfTwoAdaptersEqualsBothMerged()
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), Cfg(4, "lin0", "fc"));
        pm.AddAdapter("b", Cfg(2, "lin0", "fc"));
        pm.eval();
        pm.AddWeightedAdapter(["default", "b"], [0.5, 2.0], "cat", CombinationType.Cat);
        Assert.Equal(6, ((LoraConfig)pm.PeftConfigs["cat"]).R);
        pm.SetAdapter("cat");
        var cat = Run(pm);

        // Same weights folded in by hand: W + 0.5·ΔW_default + 2·ΔW_b on every adapted layer.
        foreach (var (_, layer) in pm.Tuner.TunerLayers())
        {
            var l = (LoraLinear)layer;
            using var _ = no_grad();
            l.BaseWeight.add_(l.GetDeltaWeight("default") * 0.5 + l.GetDeltaWeight("b") * 2.0);
        }
        using (pm.DisableAdapter()) TensorAssert.Close(cat, Run(pm), 1e-4, what: "cat vs weighted sum of deltas");
    }

    [Fact]
    public void LinearNeedsEqualRanks()
    {
        var pm = PeftModel.GetPeftModel(new TinyMlp(), Cfg(4, "lin0"));
        pm.AddAdapter("b", Cfg(2, "lin0"));
        var ex = Assert.Throws<ArgumentException>(() => pm.AddWeightedAdapter(["default", "b"], [1, 1], "x", CombinationType.Linear));
        Assert.Contains("same r", ex.Message);
    }
}

public class LoraMixedBatchTests
{
    [Fact]
    public void EachRowUsesItsOwnAdapter()
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig { R = 4, TargetModules = ["emb", "lin0", "fc", "conv"], InitLoraWeights = false });
        pm.AddAdapter("other", new LoraConfig { R = 2, TargetModules = ["lin0", "lin"], InitLoraWeights = false });
        pm.eval();
        var ids = tensor(new long[] { 1, 4, 9, 16, 25, 3, 7, 11, 13, 49, 2, 2, 5, 8, 0 }, [3, 5]);
        var mixed = pm.ForwardTensor(ids, ["other", "__base__", "default"]);
        pm.SetAdapter("other");
        var other = pm.ForwardTensor(ids);
        pm.SetAdapter("default");
        var def = pm.ForwardTensor(ids);
        Tensor baseOut;
        using (pm.DisableAdapter()) baseOut = pm.ForwardTensor(ids);
        TensorAssert.Close(other[0], mixed[0], 1e-5, what: "row 0 (other)");
        TensorAssert.Close(baseOut[1], mixed[1], 1e-5, what: "row 1 (base)");
        TensorAssert.Close(def[2], mixed[2], 1e-5, what: "row 2 (default)");
        var viaInput = pm.forward(new ModelInput { InputIds = ids, AdapterNames = ["other", "__base__", "default"] }).Logits!;
        TensorAssert.Close(mixed, viaInput, 0, what: "ModelInput.AdapterNames");
        TensorAssert.Close(def, pm.ForwardTensor(ids), 0, what: "names are cleared after the call");
        Assert.Throws<ArgumentException>(() => pm.ForwardTensor(ids, ["other", "nope", "default"]));
        Assert.Throws<ArgumentException>(() => pm.ForwardTensor(ids, ["other"]));
    }
}
