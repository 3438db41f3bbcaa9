using System.Collections;
using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;

namespace Peft.Core.Tuners;

/// <summary>
/// The one place that replaces a child module inside a TorchSharp module tree (PEFT's <c>setattr(parent, name, new)</c>).
/// </summary>
/// <remarks>
/// TorchSharp 0.107 keeps a child in two places: the C# field that <c>forward</c> reads, and the registration in the
/// non-public <c>_internal_submodules</c> ordered dictionary that <c>named_parameters()</c>, <c>state_dict()</c>,
/// <c>named_modules()</c>, <c>train()</c> and <c>to(device)</c> walk. <c>register_module</c> throws when the name is taken
/// and nothing public unregisters, so this helper uses reflection, here only:
/// <list type="bullet">
/// <item>the registration is replaced in place (same key, same position);</item>
/// <item>every instance field of the parent (any visibility, base classes included) that holds the old child by
/// reference, or whose <c>[ComponentName]</c>/field name equals the child name, is set to the new child; such a field
/// must be typed so that it can hold the new module (model code types replaceable projections as
/// <c>Module&lt;Tensor, Tensor&gt;</c>);</item>
/// <item><see cref="ModuleList{T}"/> and <see cref="Sequential"/> keep their own lists as well; those are updated too.</item>
/// </list>
/// A parent where the child is registered but no field or list can take the new module raises an error that names
/// the parent type, the field and both module types, instead of leaving forward and the state dict out of step.
/// </remarks>
public static class ModuleSurgery
{
    private const BindingFlags InstanceFields = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;

    private static readonly FieldInfo SubmodulesField =
        typeof(torch.nn.Module).GetField("_internal_submodules", InstanceFields)
        ?? throw new MissingFieldException("TorchSharp.Module._internal_submodules not found: this TorchSharp version is not supported by ModuleSurgery.");

    /// <summary>The registered children of <paramref name="module"/> (TorchSharp's ordered dictionary).</summary>
    private static OrderedDict<string, torch.nn.Module> Registered(torch.nn.Module module) =>
        (OrderedDict<string, torch.nn.Module>)SubmodulesField.GetValue(module)!;

    /// <summary>Finds the module at dotted path <paramref name="path"/> below <paramref name="root"/> ("" = root); throws naming the missing segment.</summary>
    public static torch.nn.Module GetSubmodule(torch.nn.Module root, string path)
    {
        ArgumentNullException.ThrowIfNull(root);
        if (string.IsNullOrEmpty(path)) return root;
        var current = root;
        foreach (var part in path.Split('.'))
        {
            torch.nn.Module? next = null;
            foreach (var (name, child) in current.named_children())
            {
                if (name == part) { next = child; break; }
            }
            current = next ?? throw new KeyNotFoundException($"module '{path}': '{current.GetType().Name}' has no child '{part}'.");
        }
        return current;
    }

    /// <summary>Splits "a.b.c" into the parent module at "a.b", the child name "c" and the child itself.</summary>
    public static (torch.nn.Module Parent, string Name, torch.nn.Module Child) GetParent(torch.nn.Module root, string path)
    {
        int dot = path.LastIndexOf('.');
        var parent = dot < 0 ? root : GetSubmodule(root, path[..dot]);
        var name = dot < 0 ? path : path[(dot + 1)..];
        return (parent, name, GetSubmodule(parent, name));
    }

    /// <summary>
    /// Replaces the child <paramref name="name"/> of <paramref name="parent"/> with <paramref name="replacement"/> so that
    /// forward (the C# field), <c>named_parameters()</c>, <c>state_dict()</c>, <c>train()</c> and <c>to(device)</c>
    /// all see the replacement. Returns the old child (not disposed: a wrapper usually holds it).
    /// </summary>
    /// <exception cref="KeyNotFoundException">No child of that name is registered.</exception>
    /// <exception cref="InvalidOperationException">No field or list of the parent can hold the replacement.</exception>
    public static torch.nn.Module ReplaceChild(torch.nn.Module parent, string name, torch.nn.Module replacement)
    {
        ArgumentNullException.ThrowIfNull(parent);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(replacement);
        var registered = Registered(parent);
        torch.nn.Module? found = null;
        foreach (var (n, child) in parent.named_children())
        {
            if (n == name) { found = child; break; }
        }
        var old = found ?? throw new KeyNotFoundException(
            $"'{parent.GetType().Name}' has no child '{name}' (children: {string.Join(", ", parent.named_children().Select(c => c.name))}).");
        if (ReferenceEquals(old, replacement)) return old;

        bool updatedHolder = UpdateFields(parent, name, old, replacement);
        updatedHolder |= UpdateContainerList(parent, name, old, replacement);
        if (!updatedHolder)
        {
            throw new InvalidOperationException(
                $"Cannot replace '{name}' ({old.GetType().Name}) in '{parent.GetType().FullName}' with {replacement.GetType().Name}: " +
                "no field of the parent holds it with a type that accepts the replacement. Type the field as Module<Tensor, Tensor> " +
                "(named as the HF child or with [ComponentName]).");
        }
        replacement.RegisterComponentsPublic();
        if (registered.ContainsKey(name)) registered[name] = replacement; // same key, same position (Sequential keeps only its own list)
        return old;
    }

    private static bool UpdateFields(torch.nn.Module parent, string name, torch.nn.Module old, torch.nn.Module replacement)
    {
        bool any = false;
        var mismatched = new List<string>();
        for (var t = parent.GetType(); t is not null && t != typeof(object); t = t.BaseType)
        {
            foreach (var f in t.GetFields(InstanceFields | BindingFlags.DeclaredOnly))
            {
                if (!typeof(torch.nn.Module).IsAssignableFrom(f.FieldType) && !f.FieldType.IsAssignableFrom(typeof(torch.nn.Module))) continue;
                var value = f.GetValue(parent);
                bool holdsOld = ReferenceEquals(value, old);
                if (!holdsOld && !(value is null && f.ComponentName() == name)) continue;
                if (!f.FieldType.IsInstanceOfType(replacement))
                {
                    mismatched.Add($"{t.Name}.{f.Name} : {f.FieldType.Name}");
                    continue;
                }
                f.SetValue(parent, replacement);
                any = true;
            }
        }
        if (mismatched.Count > 0)
        {
            throw new InvalidOperationException(
                $"Cannot replace '{name}' ({old.GetType().Name}) with {replacement.GetType().Name}: field(s) {string.Join(", ", mismatched)} of " +
                $"'{parent.GetType().FullName}' cannot hold it. Type the field as Module<Tensor, Tensor>.");
        }
        return any;
    }

    private static bool UpdateContainerList(torch.nn.Module parent, string name, torch.nn.Module old, torch.nn.Module replacement)
    {
        if (parent is Sequential)
        {
            var modules = (IList)typeof(Sequential).GetField("_modules", InstanceFields)!.GetValue(parent)!;
            var names = (IList<string>)typeof(Sequential).GetField("_names", InstanceFields)!.GetValue(parent)!;
            int i = names.IndexOf(name);
            if (i < 0) return false;
            if (replacement is not torch.nn.IModule<torch.Tensor, torch.Tensor>)
                throw new InvalidOperationException($"Sequential child '{name}' can only be replaced by a Module<Tensor, Tensor>, not {replacement.GetType().Name}.");
            modules[i] = replacement;
            return true;
        }
        var type = parent.GetType();
        while (type is not null && !(type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ModuleList<>))) type = type.BaseType;
        if (type is null) return false;
        var list = (IList)type.GetField("_list", InstanceFields)!.GetValue(parent)!;
        int j = IndexOfReference(list, old);
        if (j < 0) return false;
        var elementType = type.GetGenericArguments()[0];
        if (!elementType.IsInstanceOfType(replacement))
            throw new InvalidOperationException($"ModuleList<{elementType.Name}> child '{name}' cannot hold {replacement.GetType().Name}.");
        list[j] = replacement;
        return true;
    }

    private static int IndexOfReference(IList list, object item)
    {
        for (int i = 0; i < list.Count; i++)
        {
            if (ReferenceEquals(list[i], item)) return i;
        }
        return -1;
    }

    private static readonly MethodInfo RegisterComponentsMethod =
        typeof(torch.nn.Module).GetMethod("RegisterComponents", InstanceFields)!;

    /// <summary>Runs the module's <c>RegisterComponents()</c> (idempotent), as <c>register_module</c> would.</summary>
    private static void RegisterComponentsPublic(this torch.nn.Module module) => RegisterComponentsMethod.Invoke(module, null);
}
