using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// How a tuner layer reads and writes the weight of the module it wraps (PEFT reads <c>base_layer.weight</c>
/// directly, and dequantizes for bitsandbytes layers). A base layer that stores its weight in another form (a
/// quantized linear: NF4 / FP4 / int8) implements this so that adapters can wrap it, merge into it and unmerge from it;
/// ordinary layers (<see cref="Linear"/>, <see cref="Peft.Core.Modules.Conv1D"/>, <see cref="Embedding"/>,
/// <see cref="Conv2d"/>) are adapted by <see cref="BaseLayerWeight.For"/>.
/// </summary>
public interface IBaseLayerWeight
{
    /// <summary>Input features (Linear <c>in_features</c>, Conv1D rows, Embedding <c>num_embeddings</c>, Conv2d <c>in_channels</c>).</summary>
    long InFeatures { get; }

    /// <summary>Output features (Linear <c>out_features</c>, Embedding <c>embedding_dim</c>, Conv2d <c>out_channels</c>).</summary>
    long OutFeatures { get; }

    /// <summary>The dtype adapters compute in and are created with (the weight's dtype; a quantized layer's compute dtype).</summary>
    ScalarType ComputeDtype { get; }

    /// <summary>The device of the weight.</summary>
    Device Device { get; }

    /// <summary>
    /// The weight in the layer's storage layout ([out, in] for Linear, [in, out] for Conv1D, ...), in
    /// <see cref="ComputeDtype"/>. Either the parameter itself (do not dispose it) or a dequantized copy created in the
    /// caller's dispose scope; read it, do not keep it.
    /// </summary>
    Tensor GetWeight();

    /// <summary>Replaces the weight's values by <paramref name="weight"/> (same shape and layout as <see cref="GetWeight"/>; requantized when stored quantized). No autograd.</summary>
    void SetWeight(Tensor weight);
}

/// <summary>Base-weight access for ordinary layers.</summary>
internal static class BaseLayerWeight
{
    /// <summary>
    /// <paramref name="module"/> itself when it implements <see cref="IBaseLayerWeight"/>; otherwise a view of its
    /// <c>weight</c> parameter (features from Linear / Conv1D / Embedding / Conv2d, else from the weight's shape
    /// [out, in, ...]). Null when the module has no <c>weight</c> parameter.
    /// </summary>
    public static IBaseLayerWeight? For(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (module is IBaseLayerWeight own) return own;
        return Find(module) is null ? null : new ParameterWeight(module);
    }

    private static Parameter? Find(nn.Module module)
    {
        foreach (var (n, p) in module.named_parameters(recurse: false))
        {
            if (n == "weight") return p;
        }
        return null;
    }

    /// <summary>Looks the parameter up on every use: <c>Module.to(dtype / device)</c> replaces parameter objects.</summary>
    private sealed class ParameterWeight(nn.Module module) : IBaseLayerWeight
    {
        private Parameter weight => Find(module) ?? throw new InvalidOperationException($"{module.GetType().Name} has no 'weight' parameter any more.");

        public long InFeatures => module switch
        {
            Linear l => l.in_features,
            Peft.Core.Modules.Conv1D c => c.InFeatures,
            Embedding => weight.shape[0],
            Conv2d c => c.in_channels,
            _ => weight.shape.Length > 1 ? weight.shape[1] : weight.shape[0],
        };

        public long OutFeatures => module switch
        {
            Linear l => l.out_features,
            Peft.Core.Modules.Conv1D c => c.OutFeatures,
            Embedding => weight.shape[1],
            Conv2d c => c.out_channels,
            _ => weight.shape[0],
        };

        public ScalarType ComputeDtype => weight.dtype;

        public Device Device => weight.device;

        public Tensor GetWeight() => weight;

        public void SetWeight(Tensor value)
        {
            if (!value.shape.SequenceEqual(weight.shape))
                throw new ArgumentException($"{module.GetType().Name}: new weight [{string.Join(", ", value.shape)}] does not fit [{string.Join(", ", weight.shape)}].", nameof(value));
            using var _ = no_grad();
            weight.copy_(value);
        }
    }
}
