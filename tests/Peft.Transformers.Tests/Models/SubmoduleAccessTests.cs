using System.Reflection;
using Peft.Core;
using Peft.Core.Tuners;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Models;

/// <summary>
/// Model sub-modules are get-only (a caller cannot reassign one and leave the registered child behind); the supported
/// way to swap a child is <see cref="ModuleSurgery"/> on a <c>named_modules</c> path, as PEFT's <c>setattr</c>.
/// </summary>
public class SubmoduleAccessTests
{
    [Fact]
    public void ReplacingAChildThroughModuleSurgeryChangesTheForward()
    {
        using var scope = NewDisposeScope();
        var dir = Fixtures.Model("opt-tiny");
        var tok = AutoTokenizer.FromPretrained(dir);
        using var model = (Peft.Transformers.Models.Opt.OPTForCausalLM)AutoModelForCausalLM.FromPretrained(dir);
        model.eval();
        using var _ = no_grad();
        var ids = tensor(tok.Encode("Two things are infinite: the universe").Select(i => (long)i).ToArray()).unsqueeze(0); // [1, T]
        var input = new ModelInput { InputIds = ids };
        var before = model.forward(input).Logits!.clone();

        const string path = "model.decoder.layers.0.self_attn.v_proj";
        var (parent, name, old) = ModuleSurgery.GetParent(model, path);
        var replacement = nn.Identity(); // v_proj is [hidden → hidden]: the identity keeps the shapes and changes the values
        ModuleSurgery.ReplaceChild(parent, name, replacement);

        Assert.Same(replacement, model.model.decoder.layers[0].self_attn.v_proj);             // what forward reads
        Assert.Same(replacement, model.named_modules().Single(m => m.name == path).module);     // what named_modules walks
        Assert.Same(replacement, ModuleSurgery.GetSubmodule(model, path));
        Assert.DoesNotContain(model.named_parameters(), p => p.name == path + ".weight");       // state dict follows
        var replaced = model.forward(input).Logits!;
        Assert.False(allclose(before, replaced, 1e-4, 1e-5), "the forward did not change: it does not use the registered child");

        ModuleSurgery.ReplaceChild(parent, name, old);
        TensorAssert.Close(before, model.forward(input).Logits!, 1e-6, what: "original child restored");
        replacement.Dispose();
    }

    [Fact]
    public void ModelSubmodulesAreNotReassignableFromOutside()
    {
        var offenders = new List<string>();
        foreach (var t in typeof(PreTrainedModel).Assembly.GetExportedTypes().Where(t => typeof(nn.Module).IsAssignableFrom(t)))
        {
            foreach (var f in t.GetFields(BindingFlags.Public | BindingFlags.Instance))
            {
                if (typeof(nn.Module).IsAssignableFrom(f.FieldType) && !f.IsInitOnly) offenders.Add($"{t.Name}.{f.Name} (field)");
            }
            foreach (var p in t.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (typeof(nn.Module).IsAssignableFrom(p.PropertyType) && p.SetMethod is { IsPublic: true }) offenders.Add($"{t.Name}.{p.Name} (setter)");
            }
        }
        Assert.Empty(offenders);
    }
}
