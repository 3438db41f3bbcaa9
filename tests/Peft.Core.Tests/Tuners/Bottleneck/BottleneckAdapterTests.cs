using Peft.Core.Safetensors;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners.Bottleneck;

/// <summary>Bottleneck adapters on the tiny MLP: identity at start, residual math, disable, save/load, no merge, errors.</summary>
public class BottleneckAdapterTests
{
    public static TheoryData<string> Cases => new() { "linear", "conv1d", "regex", "modules-to-save", "exclude", "gelu_new", "tanh" };

    internal static AdapterConfig Config(string name) => name switch
    {
        "linear" => new AdapterConfig { TargetModules = ["lin0", "fc"], ReductionFactor = 4 },
        "conv1d" => new AdapterConfig { TargetModules = ["conv"], ReductionFactor = 8, NonLinearity = "silu" },
        "regex" => new AdapterConfig { TargetModules = @"layers\.\d+\.fc", ReductionFactor = 2, NonLinearity = "gelu" },
        "modules-to-save" => new AdapterConfig { TargetModules = ["lin"], ModulesToSave = ["classifier"] },
        "exclude" => new AdapterConfig { TargetModules = ["fc", "lin0"], ExcludeModules = ["layers.0.fc"] },
        "gelu_new" => new AdapterConfig { TargetModules = ["lin0"], NonLinearity = "gelu_new", ReductionFactor = 4 },
        "tanh" => new BottleneckAdapterConfig { TargetModules = ["lin0"], NonLinearity = "tanh", ReductionFactor = 4 },
        _ => throw new ArgumentException(name),
    };

    private static AdapterConfig Random(string name) => Config(name) with { InitAdapterWeights = false };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ZeroInitLeavesOutputsUnchangedRandomChangesThemAndDisableRestores(string name)
    {
        using var scope = NewDisposeScope();
        var model = new TinyMlp();
        var x = TinyMlp.Input();
        var baseOut = model.forward(x).detach().clone();
        var pm = PeftModel.GetPeftModel(model, Config(name));
        TensorAssert.Close(baseOut, pm.ForwardTensor(x), 0, what: $"{name}: zero up-projection is the identity");
        Assert.All(pm.named_parameters().Where(p => p.name.Contains("adapter_up")), p => Assert.True(p.parameter.eq(0).all().item<bool>(), p.name));
        Assert.Contains(pm.named_parameters(), p => p.name.Contains("adapter_down") && !p.parameter.eq(0).all().item<bool>());

        var other = PeftModel.GetPeftModel(new TinyMlp(), Random(name));
        var adapted = other.ForwardTensor(x);
        var plain = BaseOutput(other, x);
        Assert.False(plain.allclose(adapted, atol: 1e-4), $"{name}: a random adapter changes the output");
        using (other.DisableAdapter()) TensorAssert.Close(plain, other.ForwardTensor(x), 1e-6, what: "disabled");
        TensorAssert.Close(adapted, other.ForwardTensor(x), 1e-6, what: "re-enabled");
    }

    private static Tensor BaseOutput(PeftModel pm, Tensor x)
    {
        using var _ = pm.DisableAdapter();
        return pm.ForwardTensor(x);
    }

    [Fact]
    public void LayerComputesTheResidualBottleneck()
    {
        using var scope = NewDisposeScope();
        var baseLayer = nn.Linear(16, 12);
        var layer = new BottleneckAdapterLayer(baseLayer, "default", new AdapterConfig { ReductionFactor = 4, NonLinearity = "relu", InitAdapterWeights = false });
        Assert.Equal(new long[] { 3, 12 }, layer.Down("default").weight.shape);
        Assert.Equal(new long[] { 12, 3 }, layer.Up("default").weight.shape);
        var x = randn(2, 5, 16, generator: new Generator(4));
        var y = baseLayer.forward(x);
        var down = layer.Down("default");
        var up = layer.Up("default");
        var expected = y + nn.functional.linear(nn.functional.relu(nn.functional.linear(y, down.weight, down.bias)), up.weight, up.bias);
        TensorAssert.Close(expected, layer.forward(x), 1e-6, what: "y + up(relu(down(y)))");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SaveLoadRoundTripReproducesOutputTensorsAndConfig(string name)
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var model = new TinyMlp();
        var fresh = TinyMlp.CopyOf(model);
        var x = TinyMlp.Input();
        var pm = PeftModel.GetPeftModel(model, Random(name));
        var adapted = pm.ForwardTensor(x);
        pm.SavePretrained(dir.Path);

        var cfg = PeftConfig.FromPretrained(dir.Path);
        Assert.IsType<BottleneckAdapterConfig>(cfg);
        Assert.IsAssignableFrom<AdapterConfig>(cfg);
        Assert.Equal("BOTTLENECK", cfg.PeftType);
        Assert.Equal((pm.PeftConfigs["default"] with { InferenceMode = true }).ToJson(), cfg.ToJson());

        using (var file = SafetensorsFile.Open(Path.Combine(dir.Path, "adapter_model.safetensors")))
        {
            Assert.Equal("pt", file.Metadata!["format"]);
            foreach (var key in file.Keys.Where(k => !k.Contains("classifier")))
            {
                Assert.StartsWith("base_model.model.", key);
                Assert.Matches(@"\.adapter_(down|up)\.(weight|bias)$", key);
            }
        }

        var loaded = PeftModel.FromPretrained(fresh, dir.Path);
        TensorAssert.Close(adapted, loaded.ForwardTensor(x), 1e-6, what: $"{name} reloaded");
        Assert.Equal(0, loaded.GetNbTrainableParameters().trainable);
        var original = pm.Tuner.GetAdapterStateDict("default");
        var again = loaded.Tuner.GetAdapterStateDict("default");
        Assert.Equal(original.Keys.Order(), again.Keys.Order());
        foreach (var (k, v) in original) TensorAssert.Close(v, again[k], 0, what: k);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void OnlyAdapterParametersTrainAndTheCountsAddUp(string name)
    {
        using var scope = NewDisposeScope();
        var model = new TinyMlp();
        long baseCount = model.parameters().Sum(p => p.numel());
        var pm = PeftModel.GetPeftModel(model, Config(name));
        var (trainable, all) = pm.GetNbTrainableParameters();
        long adapterCount = pm.named_parameters().Where(p => p.name.Contains("adapter_down") || p.name.Contains("adapter_up") || p.name.Contains(".modules_to_save.")).Sum(p => p.parameter.numel());
        Assert.Equal(adapterCount, trainable);
        Assert.Equal(baseCount + adapterCount, all);
        Assert.Equal(string.Format(System.Globalization.CultureInfo.InvariantCulture,
            "trainable params: {0:N0} || all params: {1:N0} || trainable%: {2:F4}", trainable, all, 100.0 * trainable / all), pm.PrintTrainableParameters());
    }

    [Fact]
    public void MergeIsRefusedClearlyAndUnloadRestoresTheBaseModel()
    {
        using var scope = NewDisposeScope();
        var model = new TinyMlp();
        var x = TinyMlp.Input();
        var baseOut = model.forward(x).detach().clone();
        var pm = PeftModel.GetPeftModel(model, Random("linear"));
        var ex = Assert.Throws<NotSupportedException>(() => pm.MergeAndUnload());
        Assert.Contains("BOTTLENECK", ex.Message);
        Assert.Contains("cannot be merged", ex.Message);
        Assert.Throws<NotSupportedException>(() => pm.MergeAdapter());
        Assert.False(baseOut.allclose(pm.ForwardTensor(x), atol: 1e-4), "still adapted after the refused merge");
        var unloaded = (nn.Module<Tensor, Tensor>)pm.Unload();
        Assert.DoesNotContain(unloaded.named_parameters(), p => p.name.Contains("adapter_") || p.name.Contains("base_layer"));
        TensorAssert.Close(baseOut, unloaded.forward(x), 1e-6, what: "unloaded");
    }

    [Fact]
    public void SecondAdapterSwitchesStacksWhenBothActiveAndDeletes()
    {
        using var scope = NewDisposeScope();
        var x = TinyMlp.Input();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), Random("linear"));
        var first = pm.ForwardTensor(x);
        pm.AddAdapter("second", Random("linear") with { ReductionFactor = 8 });
        Assert.All(pm.named_parameters().Where(p => p.name.Contains(".second.")), p => Assert.False(p.parameter.requires_grad, p.name));
        pm.SetAdapter("second");
        var second = pm.ForwardTensor(x);
        Assert.False(first.allclose(second, atol: 1e-4));
        pm.Tuner.SetAdapter(["default", "second"]);
        var both = pm.ForwardTensor(x);
        Assert.False(both.allclose(first, atol: 1e-4) || both.allclose(second, atol: 1e-4), "both active stack");
        pm.SetAdapter("default");
        pm.DeleteAdapter("second");
        Assert.DoesNotContain(pm.named_parameters(), p => p.name.Contains(".second."));
        TensorAssert.Close(first, pm.ForwardTensor(x), 1e-6, what: "default after delete");
    }

    [Fact]
    public void AFewStepsLowerTheLoss()
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), Config("linear"));
        pm.train();
        var x = TinyMlp.Input();
        var target = tensor(new long[] { 0, 1, 2, 0, 1, 2, 0, 1, 2, 0 }, [10]);
        using var opt = optim.AdamW(pm.parameters().Where(p => p.requires_grad), lr: 0.01);
        var losses = new List<float>();
        for (int i = 0; i < 10; i++)
        {
            using var step = NewDisposeScope();
            var loss = nn.functional.cross_entropy(pm.ForwardTensor(x).reshape(10, TinyMlp.Classes), target);
            losses.Add(loss.item<float>());
            opt.zero_grad();
            loss.backward();
            opt.step();
        }
        Assert.True(losses[^1] < losses[0] - 1e-3, $"losses {string.Join(", ", losses)}");
    }

    [Theory]
    [InlineData("{\"peft_type\":\"BOTTLENECK\",\"reduction_factor\":0}", "reduction_factor")]
    [InlineData("{\"peft_type\":\"BOTTLENECK\",\"non_linearity\":\"softplus\"}", "softplus")]
    [InlineData("{\"peft_type\":\"BOTTLENECK\",\"placement\":\"middle\"}", "middle")]
    [InlineData("{\"peft_type\":\"BOTTLENECK\",\"target_modules\":\"all-linear\"}", "all-linear")]
    public void BadConfigFilesFailNamingTheValue(string json, string named)
    {
        var ex = Assert.Throws<InvalidDataException>(() => PeftConfig.FromJson(json, "adapter_config.json"));
        Assert.Contains(named, ex.Message);
        Assert.Contains("adapter_config.json", ex.Message);
    }

    [Fact]
    public void PlainModuleWithoutTargetsAndUnsupportedTargetsAreNamed()
    {
        var ex = Assert.Throws<ArgumentException>(() => PeftModel.GetPeftModel(new TinyMlp(), new AdapterConfig()));
        Assert.Contains("target_modules", ex.Message);
        var ns = Assert.Throws<NotSupportedException>(() => PeftModel.GetPeftModel(new TinyMlp(), new AdapterConfig { TargetModules = ["emb"] }));
        Assert.Contains("'emb'", ns.Message);
    }

    [Fact]
    public void MissingTensorInTheFileIsNamed()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        PeftModel.GetPeftModel(new TinyMlp(), Config("linear")).SavePretrained(dir.Path);
        var path = Path.Combine(dir.Path, "adapter_model.safetensors");
        Dictionary<string, Tensor> tensors;
        using (var f = SafetensorsFile.Open(path)) tensors = f.Keys.ToDictionary(k => k, k => f.GetTensor(k).clone());
        var dropped = tensors.Keys.First(k => k.EndsWith("adapter_up.bias", StringComparison.Ordinal));
        tensors.Remove(dropped);
        SafetensorsWriter.Save(path, tensors);
        var ex = Assert.Throws<InvalidDataException>(() => PeftModel.FromPretrained(new TinyMlp(), dir.Path));
        Assert.Contains(dropped, ex.Message);
    }
}

[Collection(LeakTestCollection.Name)]
public class BottleneckLeakTests
{
    [Fact]
    public void ForwardAndBackwardInAScopeLeaveNoTensors()
    {
        var pm = PeftModel.GetPeftModel(new TinyMlp(), BottleneckAdapterTests.Config("linear") with { InitAdapterWeights = false });
        using var x = TinyMlp.Input();
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = NewDisposeScope();
            pm.ForwardTensor(x).sum().backward();
            foreach (var p in pm.parameters()) p.grad?.zero_();
        }, 20, what: "bottleneck forward/backward");
    }
}
