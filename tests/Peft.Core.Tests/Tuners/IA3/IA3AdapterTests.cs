using Peft.Core.Safetensors;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners.IA3;

/// <summary>(IA)³ with several adapters, weighted adapters, and bad input.</summary>
public class IA3AdapterTests
{
    private static IA3Config Config => IA3TunerMatrixTests.Config("input");

    [Fact]
    public void SeveralActiveAdaptersMultiplyTheirVectors()
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), Config, "a");
        pm.AddAdapter("b", Config);
        pm.AddAdapter("prod", Config);
        using var _ = no_grad();
        foreach (var (_, layer) in pm.Tuner.TunerLayers())
        {
            var l = (IA3Layer)layer;
            l.Vector("prod").copy_(l.Vector("a") * l.Vector("b"));
        }
        var x = TinyMlp.Input();
        pm.Tuner.SetAdapter(["a", "b"]);
        var both = pm.ForwardTensor(x);
        pm.SetAdapter("prod");
        TensorAssert.Close(pm.ForwardTensor(x), both, 1e-5, what: "a and b active == one adapter with ia3_l_a · ia3_l_b");
        pm.SetAdapter("a");
        Assert.False(pm.ForwardTensor(x).allclose(both, atol: 1e-4), "a alone differs");
    }

    [Fact]
    public void SecondAdapterStartsFrozenSwitchesAndDeletes()
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), Config);
        pm.AddAdapter("second", Config);
        Assert.All(pm.named_parameters().Where(p => p.name.Contains(".second")), p => Assert.False(p.parameter.requires_grad, p.name));
        Assert.All(pm.named_parameters().Where(p => p.name.Contains("ia3_l.default")), p => Assert.True(p.parameter.requires_grad, p.name));
        var x = TinyMlp.Input();
        var first = pm.ForwardTensor(x);
        pm.SetAdapter("second");
        var second = pm.ForwardTensor(x);
        Assert.False(first.allclose(second, atol: 1e-4));
        Assert.All(pm.named_parameters().Where(p => p.name.Contains(".second")), p => Assert.True(p.parameter.requires_grad, p.name));
        pm.SetAdapter("default");
        pm.DeleteAdapter("second");
        Assert.DoesNotContain(pm.named_parameters(), p => p.name.Contains(".second"));
        TensorAssert.Close(first, pm.ForwardTensor(x), 1e-6, what: "default after deleting second");
    }

    [Fact]
    public void WeightedAdapterIsTheWeightedSumOfVectors()
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), Config, "a");
        pm.AddAdapter("b", Config);
        pm.AddWeightedAdapter(["a", "b"], [0.25, 0.75], "mix", CombinationType.Linear);
        Assert.DoesNotContain(pm.named_parameters(), p => p.name.Contains(".mix") && p.parameter.requires_grad);
        foreach (var (_, layer) in pm.Tuner.TunerLayers())
        {
            var l = (IA3Layer)layer;
            TensorAssert.Close(l.Vector("a") * 0.25 + l.Vector("b") * 0.75, l.Vector("mix"), 1e-6, what: "mix vector");
        }
        Assert.Throws<ArgumentException>(() => pm.AddWeightedAdapter(["a", "b"], [0.5, 0.5], "svd", CombinationType.Svd));
    }

    [Fact]
    public void FeedforwardModulesOutsideTargetsAreRejected()
    {
        var ex = Assert.Throws<ArgumentException>(() => PeftModel.GetPeftModel(new TinyMlp(), new IA3Config { TargetModules = ["lin0"], FeedforwardModules = ["fc"] }));
        Assert.Contains("'fc'", ex.Message);
        Assert.Contains("subset", ex.Message);
    }

    [Fact]
    public void PlainModuleWithoutTargetsOrFeedforwardNeedsThem()
    {
        var ex = Assert.Throws<ArgumentException>(() => PeftModel.GetPeftModel(new TinyMlp(), new IA3Config()));
        Assert.Contains("target_modules", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => PeftModel.GetPeftModel(new TinyMlp(), new IA3Config { TargetModules = ["lin0"] }));
        Assert.Contains("feedforward_modules", ex.Message);
    }

    [Fact]
    public void UnsupportedTargetIsNamed()
    {
        var ex = Assert.Throws<NotSupportedException>(() => PeftModel.GetPeftModel(new TinyMlp(), new IA3Config { TargetModules = ["emb"], FeedforwardModules = Array.Empty<string>() }));
        Assert.Contains("'emb'", ex.Message);
    }

    [Fact]
    public void WrongShapeInTheFileIsNamed()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), Config);
        pm.SavePretrained(dir.Path);
        var file = Path.Combine(dir.Path, "adapter_model.safetensors");
        Dictionary<string, Tensor> tensors;
        using (var f = SafetensorsFile.Open(file)) tensors = f.Keys.ToDictionary(k => k, k => f.GetTensor(k).clone());
        var key = tensors.Keys.First(k => k.Contains("lin0"));
        tensors[key] = ones(1, 3);
        SafetensorsWriter.Save(file, tensors);
        var ex = Assert.Throws<InvalidDataException>(() => PeftModel.FromPretrained(new TinyMlp(), dir.Path));
        Assert.Contains(key, ex.Message);
    }

    [Fact]
    public void VectorsTakeTheBaseWeightsDtypeAndOutputsKeepIt()
    {
        using var scope = NewDisposeScope();
        var model = new TinyMlp();
        model.to(float64);
        var pm = PeftModel.GetPeftModel(model, Config);
        Assert.All(pm.named_parameters().Where(p => p.name.Contains("ia3_l")), p => Assert.Equal(float64, p.parameter.dtype));
        Assert.Equal(float64, pm.ForwardTensor(TinyMlp.Input()).dtype);
        pm.MergeAdapter();
        Assert.Equal(float64, pm.ForwardTensor(TinyMlp.Input()).dtype);
    }

    [Fact]
    public void FanInFanOutDisagreeingWithTheModuleTypeIsCorrectedWithAWarning()
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), new IA3Config { TargetModules = ["conv", "lin0"], FeedforwardModules = Array.Empty<string>() });
        Assert.Contains(pm.Warnings, w => w.Contains("'conv'") && w.Contains("Conv1D"));
        Assert.True(((IA3Linear)pm.Tuner.TunerLayers().Single(l => l.Path == "conv").Layer).FanInFanOut);
        pm = PeftModel.GetPeftModel(new TinyMlp(), new IA3Config { TargetModules = ["lin0"], FeedforwardModules = Array.Empty<string>(), FanInFanOut = true });
        Assert.Contains(pm.Warnings, w => w.Contains("'lin0'") && w.Contains("Linear"));
    }

    [Fact]
    public void MixedAdapterBatchesAreRefused()
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), Config);
        var ex = Assert.Throws<NotSupportedException>(() => pm.ForwardTensor(TinyMlp.Input(), ["default", "__base__"]));
        Assert.Contains("IA3Linear", ex.Message);
    }
}

[Collection(LeakTestCollection.Name)]
public class IA3LeakTests
{
    [Theory]
    [InlineData("input")]
    [InlineData("conv1d-output")]
    [InlineData("conv2d-input")]
    public void ForwardAndMergeInAScopeLeaveNoTensors(string name)
    {
        var pm = PeftModel.GetPeftModel(IA3TunerMatrixTests.NewModel(name), IA3TunerMatrixTests.Config(name));
        using var x = IA3TunerMatrixTests.Input(name);
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = NewDisposeScope();
            pm.ForwardTensor(x);
        }, 20, what: name);
        LeakCheck.AssertNoGrowth(() =>
        {
            pm.MergeAdapter();
            pm.UnmergeAdapter();
        }, 5, what: name + " merge/unmerge");
    }
}
