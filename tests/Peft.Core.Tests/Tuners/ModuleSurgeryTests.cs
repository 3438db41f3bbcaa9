using Peft.Core.Tuners;
using Peft.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners;

public class ModuleSurgeryTests
{
    /// <summary>Replaces a module by one that adds a constant, so forward shows which one ran.</summary>
    private sealed class AddOne : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> inner;
        private readonly Parameter extra;

        public AddOne(nn.Module<Tensor, Tensor> inner) : base("AddOne")
        {
            this.inner = inner;
            extra = new Parameter(ones(1));
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => inner.forward(x) + extra;
    }

    private sealed class TypedField : nn.Module<Tensor, Tensor>
    {
        private readonly Linear proj;

        public TypedField() : base("TypedField")
        {
            proj = nn.Linear(4, 4);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => proj.forward(x);
    }

    [Fact]
    public void ReplacedFieldChildIsWhatForwardParametersStateDictAndToSee()
    {
        var model = new TinyMlp();
        using var ids = TinyMlp.Input();
        using var before = model.forward(ids);
        var (parent, name, old) = ModuleSurgery.GetParent(model, "lin0");
        var names = model.named_parameters().Select(p => p.name).ToList();
        ModuleSurgery.ReplaceChild(parent, name, new AddOne((nn.Module<Tensor, Tensor>)old));

        Assert.IsType<AddOne>(ModuleSurgery.GetSubmodule(model, "lin0"));
        var after = model.named_parameters().Select(p => p.name).ToList();
        Assert.Contains("lin0.inner.weight", after);
        Assert.Contains("lin0.extra", after);
        Assert.DoesNotContain("lin0.weight", after);
        Assert.Equal(names.Count + 1, after.Count);
        Assert.Equal(names.IndexOf("lin0.weight"), after.IndexOf("lin0.extra")); // registered at the same position (own parameters first)
        Assert.Contains("lin0.extra", model.state_dict().Keys);

        using var changed = model.forward(ids);
        Assert.False(before.allclose(changed));

        model.to(ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, ((Parameter)model.named_parameters().First(p => p.name == "lin0.extra").parameter).dtype);
        using var ids2 = TinyMlp.Input();
        using var out64 = model.forward(ids2);
        Assert.Equal(ScalarType.Float64, out64.dtype);
    }

    [Fact]
    public void ReplacesInsideSequentialAndModuleList()
    {
        var model = new TinyMlp();
        var (p1, n1, old1) = ModuleSurgery.GetParent(model, "seq.lin");
        ModuleSurgery.ReplaceChild(p1, n1, new AddOne((nn.Module<Tensor, Tensor>)old1));
        Assert.Contains("seq.lin.extra", model.named_parameters().Select(p => p.name));
        Assert.IsType<AddOne>(ModuleSurgery.GetSubmodule(model, "seq.lin"));

        var list = new ModuleList<nn.Module<Tensor, Tensor>>(nn.Linear(4, 4), nn.Linear(4, 4));
        list.RegisterComponentsForTest();
        var old = list[1];
        var repl = new AddOne(old);
        ModuleSurgery.ReplaceChild(list, "1", repl);
        Assert.Same(repl, list[1]);
        Assert.Contains("1.extra", list.named_parameters().Select(p => p.name));
        Assert.Contains("1.inner.weight", list.state_dict().Keys);
    }

    [Fact]
    public void FieldTypedTooNarrowlyFailsNamingTheField()
    {
        var model = new TypedField();
        var (parent, name, old) = ModuleSurgery.GetParent(model, "proj");
        var ex = Assert.Throws<InvalidOperationException>(() => ModuleSurgery.ReplaceChild(parent, name, new AddOne((nn.Module<Tensor, Tensor>)old)));
        Assert.Contains("proj", ex.Message);
        Assert.Contains("Module<Tensor, Tensor>", ex.Message);
        // nothing half-done: the registration is unchanged
        Assert.IsType<Linear>(ModuleSurgery.GetSubmodule(model, "proj"));
    }

    [Fact]
    public void UnknownChildNamesTheChildren()
    {
        var model = new TinyMlp();
        var ex = Assert.Throws<KeyNotFoundException>(() => ModuleSurgery.ReplaceChild(model, "nope", nn.Linear(2, 2)));
        Assert.Contains("lin0", ex.Message);
    }
}

internal static class ModuleListTestExtensions
{
    /// <summary>Registers a stand-alone ModuleList's children, as a parent's RegisterComponents would.</summary>
    public static void RegisterComponentsForTest(this torch.nn.Module module) =>
        typeof(torch.nn.Module).GetMethod("RegisterComponents", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)!.Invoke(module, null);
}

/// <summary>State-dict keys of an adapted model are PEFT's.</summary>
public class LoraStateDictKeyTests
{
    [Fact]
    public void KeysFollowPeftLayout()
    {
        var pm = PeftModel.GetPeftModel(new TinyMlp(), new LoraConfig { TargetModules = ["emb", "lin0", "conv"], ModulesToSave = ["classifier"], UseDora = false });
        pm.AddAdapter("dora", new LoraConfig { TargetModules = ["lin0"], UseDora = true });
        var keys = pm.state_dict().Keys.ToHashSet();
        foreach (var k in new[]
        {
            "base_model.model.lin0.base_layer.weight", "base_model.model.lin0.base_layer.bias",
            "base_model.model.lin0.lora_A.default.weight", "base_model.model.lin0.lora_B.default.weight",
            "base_model.model.lin0.lora_A.dora.weight", "base_model.model.lin0.lora_magnitude_vector.dora.weight",
            "base_model.model.conv.base_layer.weight", "base_model.model.conv.lora_A.default.weight",
            "base_model.model.emb.base_layer.weight", "base_model.model.emb.lora_embedding_A.default", "base_model.model.emb.lora_embedding_B.default",
            "base_model.model.classifier.original_module.weight", "base_model.model.classifier.modules_to_save.default.weight",
            "base_model.model.layers.0.fc.weight", "base_model.model.seq.lin.weight",
        })
        {
            Assert.Contains(k, keys);
        }
        Assert.DoesNotContain("base_model.model.lin0.weight", keys);
    }
}
