using TorchSharp;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>The non-linearities a bottleneck adapter can use between its down- and up-projection, by config name.</summary>
public static class BottleneckActivations
{
    private static readonly Dictionary<string, Func<Tensor, Tensor>> Table = new(StringComparer.Ordinal)
    {
        ["relu"] = x => nn.functional.relu(x),
        ["gelu"] = x => nn.functional.gelu(x),
        ["gelu_new"] = GeluTanh, // HF "gelu_new": the tanh approximation
        ["silu"] = x => nn.functional.silu(x),
        ["swish"] = x => nn.functional.silu(x),
        ["tanh"] = x => x.tanh(),
        ["sigmoid"] = x => x.sigmoid(),
        ["leaky_relu"] = x => nn.functional.leaky_relu(x, 0.01),
    };

    /// <summary>The accepted names.</summary>
    public static IReadOnlyCollection<string> Names => Table.Keys;

    /// <summary>Whether <paramref name="name"/> is an accepted non-linearity.</summary>
    public static bool IsKnown(string? name) => name is not null && Table.ContainsKey(name);

    /// <summary>The function for <paramref name="name"/>; throws naming the accepted ones when unknown.</summary>
    public static Func<Tensor, Tensor> Get(string name) =>
        name is not null && Table.TryGetValue(name, out var f) ? f
            : throw new ArgumentException($"non_linearity \"{name}\" is not supported (supported: {string.Join(", ", Names)}).", nameof(name));

    private static Tensor GeluTanh(Tensor x) => x.mul(HeldScalars.Of(0.5)).mul(x.add(x.pow(HeldScalars.Of(3)).mul(HeldScalars.Of(0.044715)), HeldScalars.One).mul(HeldScalars.Of(Math.Sqrt(2.0 / Math.PI))).tanh().add(HeldScalars.Of(1), HeldScalars.One));
}
