using System.Text.RegularExpressions;
using TorchSharp;
using TorchSharp.Modules;

namespace Peft.Transformers.Optimization;

/// <summary>
/// Which trainable parameters get weight decay (HF <c>Trainer.get_decay_parameter_names</c>): not biases and not
/// the weights of normalisation layers. A norm layer is recognised by its type (TorchSharp <c>LayerNorm</c>, or any
/// module class whose name ends in "Norm", e.g. <c>RmsNorm</c>) or by its parameter name (HF's patterns: "bias",
/// "layernorm", "rmsnorm", a ".norm." segment, "_norm").
/// </summary>
public static partial class DecayRule
{
    [GeneratedRegex(@"bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)")]
    private static partial Regex NoDecayName();

    /// <summary>Splits the trainable parameters of <paramref name="model"/> into the decay and no-decay groups (in <c>named_parameters()</c> order).</summary>
    public static IReadOnlyList<ParamGroup> Groups(torch.nn.Module model, double weightDecay)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Groups(model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)).ToList(), weightDecay, model);
    }

    /// <summary>Splits <paramref name="trainable"/> (named as in <paramref name="model"/>) into the decay and no-decay groups.</summary>
    public static IReadOnlyList<ParamGroup> Groups(IReadOnlyList<(string Name, Parameter Param)> trainable, double weightDecay, torch.nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(trainable);
        ArgumentNullException.ThrowIfNull(model);
        var normParams = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (prefix, module) in model.named_modules())
        {
            if (!IsNorm(module)) continue;
            foreach (var (name, _) in module.named_parameters(recurse: false))
                normParams.Add(prefix.Length == 0 ? name : prefix + "." + name);
        }
        var decay = new List<(string, Parameter)>();
        var noDecay = new List<(string, Parameter)>();
        foreach (var (name, p) in trainable)
        {
            bool skip = normParams.Contains(name) || NoDecayName().IsMatch(name.ToLowerInvariant());
            (skip ? noDecay : decay).Add((name, p));
        }
        return
        [
            new ParamGroup(decay.Select(x => x.Item1).ToArray(), decay.Select(x => x.Item2).ToArray(), weightDecay),
            new ParamGroup(noDecay.Select(x => x.Item1).ToArray(), noDecay.Select(x => x.Item2).ToArray(), 0.0),
        ];
    }

    private static bool IsNorm(torch.nn.Module m) =>
        m is LayerNorm || m.GetType().Name.EndsWith("Norm", StringComparison.Ordinal);
}
