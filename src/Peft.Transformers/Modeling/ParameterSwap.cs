using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Replaces one parameter of a module by a new tensor (another dtype / device, or real storage for a parameter built
/// on the meta device) so that forward, <c>named_parameters()</c>, <c>state_dict()</c> and <c>to()</c> all see it —
/// what the streaming loader does tensor by tensor instead of copying into a pre-built fp32 model.
/// </summary>
/// <remarks>
/// TorchSharp keeps a parameter in two places: the C# field <c>forward</c> reads (e.g. Linear's <c>_weight</c>,
/// RmsNorm's <c>weight</c>) and the registration in the non-public <c>_internal_params</c> ordered dictionary. This
/// mirrors TorchSharp's own <c>_toEpilog</c>: every instance field (base classes included) holding the old parameter
/// by reference is set to the new one, and the registration is replaced in place (same key, same order).
/// </remarks>
internal static class ParameterSwap
{
    private const BindingFlags InstanceFields = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;

    private static readonly FieldInfo ParamsField =
        typeof(nn.Module).GetField("_internal_params", InstanceFields)
        ?? throw new MissingFieldException("TorchSharp.Module._internal_params not found: this TorchSharp version is not supported by ParameterSwap.");

    /// <summary>
    /// Puts <paramref name="value"/> (detached; ownership passes to the module) in place of the parameter
    /// <paramref name="name"/> of <paramref name="module"/>, keeping its requires_grad, and disposes the old one.
    /// </summary>
    /// <exception cref="KeyNotFoundException">The module has no such parameter.</exception>
    public static Parameter Replace(nn.Module module, string name, Tensor value)
    {
        var registered = (OrderedDict<string, Parameter>)ParamsField.GetValue(module)!;
        if (!registered.ContainsKey(name))
            throw new KeyNotFoundException($"'{module.GetType().Name}' has no parameter '{name}'.");
        var old = registered[name];
        var fresh = new Parameter(value.detach().DetachFromDisposeScope(), old.requires_grad);
        // Modules backed by a native libtorch module (e.g. Embedding, LayerNorm) expose the parameter through a
        // property whose setter updates the native module and the registration; use it when there is one.
        var property = module.GetType().GetProperty(name, BindingFlags.Instance | BindingFlags.Public);
        if (property is { CanWrite: true } && property.PropertyType.IsAssignableFrom(typeof(Parameter)))
        {
            property.SetValue(module, fresh);
            registered[name] = fresh;
            old.Dispose();
            return fresh;
        }
        for (var t = module.GetType(); t is not null && t != typeof(object); t = t.BaseType)
        {
            foreach (var f in t.GetFields(InstanceFields | BindingFlags.DeclaredOnly))
            {
                if (ReferenceEquals(f.GetValue(module), old)) f.SetValue(module, fresh);
            }
        }
        registered[name] = fresh;
        old.Dispose();
        return fresh;
    }
}
