using Peft.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners;

/// <summary>
/// AdaLoRA on the tiny model (Linear, ModuleList, GPT-2 Conv1D targets): config checks as PEFT's, merge / unmerge /
/// disable, a whole rank schedule driven through <see cref="ITrainingHooks"/> that ends at the target budget and saves
/// trimmed files that load back to the same outputs, and the errors PEFT raises. Fixture parity (llama-adalora, the
/// training trajectory) lives in Peft.Transformers.Tests/Peft.
/// </summary>
public class AdaLoraTests
{
    internal static AdaLoraConfig Config(int totalStep = 8) => new()
    {
        InitR = 4, TargetR = 2, Tinit = 1, Tfinal = 2, DeltaT = 1, TotalStep = totalStep, LoraAlpha = 6,
        TargetModules = ["lin0", "fc", "conv"], InitLoraWeights = false,
    };

    public static TheoryData<AdaLoraConfig, string> BadConfigs => new()
    {
        { Config() with { TotalStep = null }, "total_step" },
        { Config() with { TotalStep = 0 }, "total_step" },
        { Config() with { Tinit = 6, Tfinal = 2, TotalStep = 8 }, "budgeting phase" },
        { Config() with { OrthRegWeight = -0.1 }, "orth_reg_weight" },
        { Config() with { UseDora = true }, "DoRA" },
        { Config() with { DeltaT = 0 }, "deltaT" },
        { Config() with { RankPattern = new Dictionary<string, IReadOnlyList<bool>> { ["lin0.lora_E"] = [true, false] } }, "rank_pattern[\"lin0.lora_E\"]" },
    };

    [Theory]
    [MemberData(nameof(BadConfigs))]
    public void Invalid_configs_fail_naming_the_field(AdaLoraConfig config, string expected)
    {
        var ex = Assert.ThrowsAny<ArgumentException>(config.Validate);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void Config_json_round_trips_with_the_rank_pattern_as_PEFT_writes_it()
    {
        var config = Config() with { RankPattern = new Dictionary<string, IReadOnlyList<bool>> { ["lin0.lora_E"] = [true, false, true, true] } };
        var json = System.Text.Json.Nodes.JsonNode.Parse(config.ToJson())!.AsObject();
        Assert.Equal("ADALORA", json["peft_type"]!.GetValue<string>());
        Assert.Equal("[true,false,true,true]", json["rank_pattern"]!["lin0.lora_E"]!.ToJsonString());
        Assert.Equal(4, json["init_r"]!.GetValue<int>());
        var back = Assert.IsType<AdaLoraConfig>(PeftConfig.FromJson(config.ToJson()));
        Assert.Equal([true, false, true, true], back.RankPattern!["lin0.lora_E"]);
        Assert.Equal(config.TotalStep, back.TotalStep);
    }

    [Fact]
    public void Svd_layers_merge_unmerge_and_disable_like_the_unmerged_forward()
    {
        using var scope = NewDisposeScope();
        var baseModel = new TinyMlp();
        var plain = TinyMlp.CopyOf(baseModel);
        using var pm = PeftModel.GetPeftModel(baseModel, Config());
        pm.eval();
        Assert.All(pm.Tuner.TunerLayers(), l => Assert.IsType<SvdLinear>(l.Layer));
        Assert.Contains(pm.Warnings, w => w.Contains("'conv'") && w.Contains("Conv1D"));
        using var ids = TinyMlp.Input();
        var adapted = pm.ForwardTensor(ids);
        Assert.False(adapted.allclose(plain.forward(ids), atol: 1e-4), "the adapter does not change the output, so this test would prove nothing");
        using (pm.DisableAdapter()) TensorAssert.Close(plain.forward(ids), pm.ForwardTensor(ids), 1e-6, what: "disabled");
        pm.MergeAdapter();
        TensorAssert.Close(adapted, pm.ForwardTensor(ids), 1e-4, what: "merged");
        pm.UnmergeAdapter();
        TensorAssert.Close(adapted, pm.ForwardTensor(ids), 1e-4, what: "unmerged");
        var merged = (TinyMlp)pm.MergeAndUnload();
        TensorAssert.Close(adapted, merged.forward(ids), 1e-4, what: "merge and unload");
    }

    [Fact]
    public void A_whole_schedule_ends_at_the_target_budget_and_the_trimmed_files_load_back()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var config = Config(totalStep: 8);
        using var pm = PeftModel.GetPeftModel(new TinyMlp(), config);
        var layers = pm.Tuner.TunerLayers().Select(l => (l.Path, Layer: (SvdLinear)l.Layer)).ToList();
        Train(pm, steps: 8);

        var final = Assert.IsType<AdaLoraConfig>(pm.PeftConfigs["default"]);
        var pattern = Assert.IsAssignableFrom<IReadOnlyDictionary<string, IReadOnlyList<bool>>>(final.RankPattern);
        Assert.Equal(layers.Select(l => l.Path + ".lora_E").Order(), pattern.Keys.Order());
        Assert.Equal(config.TargetR * layers.Count, pattern.Values.Sum(v => v.Count(k => k)));
        foreach (var (path, layer) in layers)
        {
            var e = layer.LoraE("default").detach().view(-1);
            var keep = pattern[path + ".lora_E"];
            for (int i = 0; i < keep.Count; i++)
                if (!keep[i]) Assert.Equal(0f, e[i].item<float>());
        }

        pm.eval();
        using var ids = TinyMlp.Input();
        var trained = pm.ForwardTensor(ids);
        pm.SavePretrained(dir.Path);
        using (var file = Peft.Core.Safetensors.SafetensorsFile.Open(Path.Combine(dir.Path, "adapter_model.safetensors")))
        {
            foreach (var (path, _) in layers)
            {
                int rank = pattern[path + ".lora_E"].Count(k => k);
                Assert.Equal([rank, 1L], file.GetInfo($"base_model.model.{path}.lora_E").Shape);
                Assert.Equal(rank, file.GetInfo($"base_model.model.{path}.lora_A").Shape[0]);
                Assert.Equal(rank, file.GetInfo($"base_model.model.{path}.lora_B").Shape[1]);
            }
        }
        var baseCopy = new TinyMlp();
        var sd = ((TinyMlp)pm.Unload()).state_dict();
        using (no_grad()) foreach (var (k, v) in baseCopy.state_dict()) v.copy_(sd[k]);
        using var loaded = PeftModel.FromPretrained(baseCopy, dir.Path);
        TensorAssert.Close(trained, loaded.ForwardTensor(ids), 1e-4, what: "trained vs trimmed and reloaded");
    }

    [Fact]
    public void Conv2d_layers_merge_train_and_reload_trimmed()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var model = new TinyConvNet();
        var sd = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        var x = randn(3, 3, 8, 8);
        var baseOut = model.forward(x).detach().clone();
        var config = Config(totalStep: 6) with { TargetModules = ["conv1", "conv2"] };
        using var pm = PeftModel.GetPeftModel(model, config);
        var conv1 = Assert.IsType<SvdConv2d>(Peft.Core.Tuners.ModuleSurgery.GetSubmodule(pm.GetBaseModel(), "conv1"));
        Assert.Equal([4L, 3 * 3 * 3], conv1.LoraA("default").shape);
        pm.eval();
        var adapted = pm.ForwardTensor(x);
        Assert.False(baseOut.allclose(adapted, atol: 1e-4));
        using (pm.DisableAdapter()) TensorAssert.Close(baseOut, pm.ForwardTensor(x), 1e-6, what: "disabled");
        pm.MergeAdapter();
        TensorAssert.Close(adapted, pm.ForwardTensor(x), 1e-4, what: "merged");
        pm.UnmergeAdapter();
        TensorAssert.Close(adapted, pm.ForwardTensor(x), 1e-4, what: "unmerged");

        pm.train();
        ITrainingHooks hooks = pm;
        using (var optimizer = optim.AdamW(pm.parameters().Where(p => p.requires_grad), lr: 0.05))
        {
            for (int step = 0; step < 6; step++)
            {
                using var stepScope = NewDisposeScope();
                var loss = pm.ForwardTensor(x).pow(2).mean() + hooks.LossTerm()!;
                loss.backward();
                optimizer.step();
                hooks.OnOptimizerStep(step);
                optimizer.zero_grad();
            }
        }
        var pattern = ((AdaLoraConfig)pm.PeftConfigs["default"]).RankPattern!;
        Assert.Equal(config.TargetR * 2, pattern.Values.Sum(v => v.Count(k => k)));
        pm.eval();
        var trained = pm.ForwardTensor(x);
        pm.SavePretrained(dir.Path);
        var fresh = new TinyConvNet();
        using (no_grad()) foreach (var (k, v) in fresh.state_dict()) v.copy_(sd[k]);
        using var loaded = PeftModel.FromPretrained(fresh, dir.Path);
        TensorAssert.Close(trained, loaded.ForwardTensor(x), 1e-4, what: "trimmed and reloaded");
    }

    [Fact]
    public void A_budget_that_is_already_met_masks_nothing()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(new TinyMlp(), Config(totalStep: 6) with { TargetR = 4 });
        Train(pm, steps: 6);
        var pattern = ((AdaLoraConfig)pm.PeftConfigs["default"]).RankPattern!;
        Assert.All(pattern.Values, v => Assert.All(v, Assert.True));
    }

    [Fact]
    public void Errors_as_PEFT_raises_them()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(new TinyMlp(), Config());
        var second = Assert.Throws<ArgumentException>(() => pm.AddAdapter("other", Config()));
        Assert.Contains("only 1 trainable adapter", second.Message);
        pm.AddAdapter("frozen", Config() with { InferenceMode = true });
        Assert.DoesNotContain(pm.named_parameters(), p => p.name.Contains(".frozen") && p.parameter.requires_grad);
        Assert.Throws<NotSupportedException>(() => pm.AddWeightedAdapter(["default"], [1.0], "w"));
        using var ids = TinyMlp.Input();
        Assert.Throws<NotSupportedException>(() => pm.ForwardTensor(ids, ["default", "__base__"]));
        var noGrad = Assert.Throws<InvalidOperationException>(() => ((AdaLoraModel)pm.Tuner).UpdateAndAllocate(0));
        Assert.Contains("zero_grad", noGrad.Message);
        var rankNum = pm.named_parameters().Single(p => p.name.EndsWith("lin0.ranknum.default", StringComparison.Ordinal));
        Assert.False(rankNum.parameter.requires_grad);
        Assert.Equal(4f, rankNum.parameter.item<float>());
    }

    /// <summary>A few steps of AdamW on a random classification target through PeftModel + ITrainingHooks only.</summary>
    internal static void Train(PeftModel pm, int steps, int firstStep = 0)
    {
        pm.train();
        ITrainingHooks hooks = pm;
        var parameters = pm.parameters().Where(p => p.requires_grad).ToList();
        using var optimizer = optim.AdamW(parameters, lr: 0.05);
        using var ids = TinyMlp.Input();
        using var labels = tensor(new long[] { 0, 1, 2, 1, 0, 2, 2, 1, 0, 1 }, [2, 5]);
        for (int step = firstStep; step < firstStep + steps; step++)
        {
            using var stepScope = NewDisposeScope();
            var logits = pm.forward(new ModelInput { InputIds = ids }).Logits!;                       // [2, 5, 3]
            var loss = nn.functional.cross_entropy(logits.view(-1, TinyMlp.Classes), labels.view(-1));
            loss = hooks.LossTerm() is { } extra ? loss + extra : loss;
            loss.backward();
            optimizer.step();
            hooks.OnOptimizerStep(step);
            optimizer.zero_grad();
        }
    }
}

[Collection(LeakTestCollection.Name)]
public class AdaLoraLeakTests
{
    [Fact]
    public void Training_steps_with_rank_allocation_leave_no_tensors()
    {
        var config = AdaLoraTests.Config(totalStep: 10_000) with { Tinit = 0, Tfinal = 0 };
        using var pm = PeftModel.GetPeftModel(new TinyMlp(), config);
        int step = 1;
        LeakCheck.AssertNoGrowth(() => AdaLoraTests.Train(pm, steps: 1, firstStep: step++), 10, what: "AdaLoRA train step + UpdateAndAllocate");
        Assert.NotNull(((AdaLoraConfig)pm.PeftConfigs["default"]).RankPattern);
    }
}
