using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners;

/// <summary>The tuner matrix: each LoRA configuration on the tiny model must satisfy the same laws.</summary>
public class LoraTunerMatrixTests
{
    public static TheoryData<string> Cases => new()
    {
        "linear", "rslora", "dora", "gaussian", "bias-all", "bias-lora-only", "regex", "all-linear",
        "layers-to-transform", "rank-alpha-pattern", "conv1d", "embedding", "modules-to-save", "dropout", "exclude",
    };

    internal static LoraConfig Config(string name) => name switch
    {
        "linear" => new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["lin0", "fc"], InitLoraWeights = false },
        "rslora" => new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["lin0", "fc"], UseRslora = true, InitLoraWeights = false },
        "dora" => new LoraConfig { R = 2, LoraAlpha = 4, TargetModules = ["lin0", "fc", "conv"], UseDora = true, InitLoraWeights = false },
        "gaussian" => new LoraConfig { R = 4, TargetModules = ["lin0"], InitLoraWeights = LoraInit.Gaussian },
        "bias-all" => new LoraConfig { R = 2, TargetModules = ["lin0"], Bias = LoraBias.All, InitLoraWeights = false },
        "bias-lora-only" => new LoraConfig { R = 2, TargetModules = ["lin0", "conv"], Bias = LoraBias.LoraOnly, InitLoraWeights = false },
        "regex" => new LoraConfig { R = 3, TargetModules = @"layers\.\d+\.fc", InitLoraWeights = false },
        "all-linear" => new LoraConfig { R = 2, TargetModules = "all-linear", InitLoraWeights = false },
        "layers-to-transform" => new LoraConfig { R = 2, TargetModules = ["fc"], LayersToTransform = [1], LayersPattern = ["layers"], InitLoraWeights = false },
        "rank-alpha-pattern" => new LoraConfig
        {
            R = 4, LoraAlpha = 8, TargetModules = ["lin0", "fc"], InitLoraWeights = false,
            RankPattern = new Dictionary<string, int> { ["layers.1.fc"] = 2 }, AlphaPattern = new Dictionary<string, double> { ["lin0"] = 3 },
        },
        "conv1d" => new LoraConfig { R = 4, TargetModules = ["conv"], FanInFanOut = true, InitLoraWeights = false },
        "embedding" => new LoraConfig { R = 4, TargetModules = ["emb"], InitLoraWeights = false },
        "modules-to-save" => new LoraConfig { R = 4, TargetModules = ["lin"], ModulesToSave = ["classifier"], InitLoraWeights = false },
        "dropout" => new LoraConfig { R = 4, TargetModules = ["lin0"], LoraDropout = 0.5, InitLoraWeights = false },
        "exclude" => new LoraConfig { R = 4, TargetModules = ["fc", "lin0"], ExcludeModules = ["layers.0.fc"], InitLoraWeights = false },
        _ => throw new ArgumentException(name),
    };

    private static Tensor Run(PeftModel pm)
    {
        using var ids = TinyMlp.Input();
        return pm.ForwardTensor(ids);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void AdapterChangesOutputMergeEqualsUnmergedAndUnmergeRestores(string name)
    {
        using var scope = NewDisposeScope();
        var baseModel = new TinyMlp();
        using var ids = TinyMlp.Input();
        var baseOut = baseModel.forward(ids).detach().clone();
        var pm = PeftModel.GetPeftModel(baseModel, Config(name));
        pm.eval();
        var adapted = Run(pm);
        if (name == "gaussian")
            TensorAssert.Close(baseOut, adapted, 1e-6, what: "gaussian init starts as a no-op (B = 0)");
        else
            Assert.False(baseOut.allclose(adapted, atol: 1e-4), $"{name}: adapter did not change the output");

        using (pm.DisableAdapter()) TensorAssert.Close(baseOut, Run(pm), 1e-6, what: $"{name} disabled");
        TensorAssert.Close(adapted, Run(pm), 1e-6, what: $"{name} re-enabled");

        pm.MergeAdapter();
        TensorAssert.Close(adapted, Run(pm), 1e-5, what: $"{name} merged");
        using (pm.DisableAdapter()) TensorAssert.Close(baseOut, Run(pm), 1e-5, what: $"{name} disabled while merged (unmerges)");
        pm.MergeAdapter();
        pm.UnmergeAdapter();
        TensorAssert.Close(adapted, Run(pm), 1e-5, what: $"{name} unmerged");

        var merged = (nn.Module<Tensor, Tensor>)pm.MergeAndUnload();
        Assert.DoesNotContain(merged.named_parameters(), p => p.name.Contains("lora_") || p.name.Contains("base_layer") || p.name.Contains("modules_to_save"));
        TensorAssert.Close(adapted, merged.forward(ids), 1e-5, what: $"{name} merge_and_unload");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SaveLoadRoundTripReproducesOutputAndTensors(string name)
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var baseModel = new TinyMlp();
        var fresh = TinyMlp.CopyOf(baseModel);
        var pm = PeftModel.GetPeftModel(baseModel, Config(name));
        pm.eval();
        var adapted = Run(pm);
        pm.SavePretrained(dir.Path);
        Assert.True(File.Exists(Path.Combine(dir.Path, "adapter_config.json")));

        var loaded = PeftModel.FromPretrained(fresh, dir.Path);
        TensorAssert.Close(adapted, Run(loaded), 1e-6, what: $"{name} reloaded");
        Assert.Equal(0, loaded.GetNbTrainableParameters().trainable - (Config(name).Bias == LoraBias.None ? 0 : CountRequiresGradBiases(loaded)));

        var original = pm.Tuner.GetAdapterStateDict("default");
        var again = loaded.Tuner.GetAdapterStateDict("default");
        Assert.Equal(original.Keys.Order(), again.Keys.Order());
        foreach (var (k, v) in original) TensorAssert.Close(v, again[k], 0, what: k);
        Assert.All(original.Keys, k => Assert.StartsWith("base_model.model.", k));
        Assert.DoesNotContain(original.Keys, k => k.Contains(".default"));

        var cfg = PeftConfig.FromPretrained(dir.Path);
        Assert.True(cfg.InferenceMode);
        Assert.Equal((pm.PeftConfigs["default"] with { InferenceMode = true }).ToJson(), cfg.ToJson());
    }

    private static long CountRequiresGradBiases(PeftModel pm) =>
        pm.named_parameters().Where(p => p.parameter.requires_grad && p.name.EndsWith("bias")).Sum(p => p.parameter.numel());

    [Theory]
    [MemberData(nameof(Cases))]
    public void OnlyAdapterParametersTrainAndCountsMatchTheLayers(string name)
    {
        using var scope = NewDisposeScope();
        var baseModel = new TinyMlp();
        long baseCount = baseModel.parameters().Sum(p => p.numel());
        var pm = PeftModel.GetPeftModel(baseModel, Config(name));
        var (trainable, all) = pm.GetNbTrainableParameters();
        long expectedTrainable = pm.named_parameters()
            .Where(p => p.name.Contains("lora_") || p.name.Contains(".modules_to_save.") ||
                        (Config(name).Bias == LoraBias.All && p.name.EndsWith("bias") && !p.name.Contains("original_module")) ||
                        (Config(name).Bias == LoraBias.LoraOnly && p.name.EndsWith("base_layer.bias")))
            .Sum(p => p.parameter.numel());
        Assert.Equal(expectedTrainable, trainable);
        Assert.Equal(all, baseCount + pm.named_parameters().Where(p => p.name.Contains("lora_") || p.name.Contains(".modules_to_save.")).Sum(p => p.parameter.numel()));
        var line = pm.PrintTrainableParameters();
        Assert.Equal(string.Format(System.Globalization.CultureInfo.InvariantCulture,
            "trainable params: {0:N0} || all params: {1:N0} || trainable%: {2:F4}", trainable, all, 100.0 * trainable / all), line);
    }

    [Fact]
    public void TrainingStepChangesOnlyAdapterWeights()
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(new TinyMlp(), Config("dora"));
        pm.train();
        var before = pm.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        var opt = optim.SGD(pm.parameters().Where(p => p.requires_grad), 0.1);
        using var ids = TinyMlp.Input();
        var loss = pm.ForwardTensor(ids).pow(2).mean();
        loss.backward();
        opt.step();
        foreach (var (k, v) in pm.state_dict())
        {
            bool changed = !before[k].equal(v).all().item<bool>();
            Assert.True(changed == (k.Contains("lora_")), $"{k}: changed={changed}");
        }
    }
}
