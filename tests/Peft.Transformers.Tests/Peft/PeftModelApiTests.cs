using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.PeftParity; // not "...Tests.Peft": that would shadow the root namespace Peft in sibling tests

/// <summary>The DESIGN.md PEFT flow on a real (tiny) model: create, train a little, save, reload, switch, merge.</summary>
public class PeftModelApiTests
{
    [Fact]
    public void DefaultTargetModulesComeFromModelTypeAndMatchThePeftCount()
    {
        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Adapter("opt-lora"), "reference.json")))!;
        using var lm = AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny"));
        var pm = PeftModel.GetPeftModel(lm, new LoraConfig { R = 4, LoraAlpha = 8, TaskType = TaskType.CausalLM });
        Assert.Equal(["q_proj", "v_proj"], ((LoraConfig)pm.ActivePeftConfig).TargetModules!.Names!);
        Assert.Equal(reference["print_trainable_parameters"]!.GetValue<string>(), pm.PrintTrainableParameters());
        Assert.Equal(Fixtures.Model("opt-tiny"), pm.ActivePeftConfig.BaseModelNameOrPath);
    }

    [Fact]
    public void TrainSaveReloadSwitchAndMergeOnOpt()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var reference = Core.Safetensors.SafetensorsFile.Open(Path.Combine(Fixtures.Adapter("opt-lora"), "reference.safetensors"));
        var ids = reference.GetTensor("input_ids");
        var mask = reference.GetTensor("attention_mask");
        var input = new ModelInput { InputIds = ids, AttentionMask = mask, Labels = ids.masked_fill(mask.eq(0), -100) };

        var lm = AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny"));
        var pm = PeftModel.GetPeftModel(lm, new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM });
        pm.train();
        var opt = optim.AdamW(pm.parameters().Where(p => p.requires_grad), 1e-2);
        double first = 0, last = 0;
        for (int step = 0; step < 5; step++)
        {
            using var stepScope = NewDisposeScope();
            opt.zero_grad();
            var loss = pm.forward(input).Loss!;
            loss.backward();
            opt.step();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        Assert.True(last < first, $"loss did not go down: {first} -> {last}");
        pm.eval();
        Tensor trained;
        using (no_grad()) trained = pm.forward(input).Logits!;
        pm.SavePretrained(dir.Path);

        var again = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny")), dir.Path, isTrainable: false);
        Assert.Equal((0L, again.GetNbTrainableParameters().all), again.GetNbTrainableParameters());
        using (no_grad())
        {
            TensorAssert.Close(trained, again.forward(input).Logits!, 1e-5, mask, "reloaded C#-trained adapter");
            again.LoadAdapter(Fixtures.Adapter("opt-lora"), "other");
            again.SetAdapter("other");
            TensorAssert.Close(reference.GetTensor("logits"), again.forward(input).Logits!, 1e-4, mask, "fixture adapter as 'other'");
            using (again.DisableAdapter())
                TensorAssert.Close(reference.GetTensor("logits_adapter_disabled"), again.forward(input).Logits!, 1e-4, mask, "disabled");
            again.DeleteAdapter("other");
            Assert.Equal(["default"], again.ActiveAdapters);
            TensorAssert.Close(trained, again.forward(input).Logits!, 1e-5, mask, "back to the trained adapter");
            var merged = (PreTrainedModel)again.MergeAndUnload();
            TensorAssert.Close(trained, merged.forward(input).Logits!, 1e-4, mask, "merged");
            var cfg = PeftConfig.FromPretrained(dir.Path);
            Assert.IsType<LoraConfig>(cfg);
            Assert.False((cfg with { InferenceMode = false }).InferenceMode);
        }
    }

    [Fact]
    public void ToDtypeMovesAdapterWeightsToo()
    {
        using var scope = NewDisposeScope();
        using var reference = Core.Safetensors.SafetensorsFile.Open(Path.Combine(Fixtures.Adapter("llama-dora"), "reference.safetensors"));
        var pm = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny")), Fixtures.Adapter("llama-dora"));
        pm.to(ScalarType.Float64);
        Assert.All(pm.parameters(), p => Assert.Equal(ScalarType.Float64, p.dtype));
        var mask = reference.GetTensor("attention_mask");
        using var _ = no_grad();
        var logits = pm.forward(new ModelInput { InputIds = reference.GetTensor("input_ids"), AttentionMask = mask }).Logits!;
        Assert.Equal(ScalarType.Float64, logits.dtype);
        TensorAssert.Close(reference.GetTensor("logits"), logits, 1e-4, mask, "float64 DoRA");
    }
}
