using Peft.Core;
using static TorchSharp.torch;

namespace Peft.Transformers.Models;

/// <summary>
/// Runs one <see cref="ITransformerLayer"/> through <see cref="CheckpointFunction"/> (HF
/// <c>GradientCheckpointingLayer</c>): hidden states, mask, rotary cos/sin and the layer's cached prefix keys/values
/// are the saved inputs; the layer's trainable parameters receive their gradients from the recomputation.
/// </summary>
/// <remarks>
/// Caching is off while checkpointing (HF sets <c>use_cache=False</c>): a given cache is read, its prefix of this
/// layer attended to and differentiated (prefix tuning), but it is not extended.
/// </remarks>
internal static class LayerCheckpoint
{
    /// <summary>The layer's output [B, T, hidden], recomputed in backward.</summary>
    public static Tensor Forward(ITransformerLayer layer, Tensor hidden, in LayerInputs inputs)
    {
        int index = inputs.LayerIndex;
        var past = inputs.Cache?[index];
        Tensor Run(Tensor?[] x)
        {
            using var prefix = x[4] is null ? null : PrefixCache(index, x[4]!, x[5]!);
            return layer.Forward(x[0]!, new LayerInputs(index, x[1], x[2], x[3], prefix));
        }
        var trainable = layer.parameters().Where(p => p.requires_grad).ToArray();
        return CheckpointFunction.Run(Run, [hidden, inputs.Mask, inputs.Cos, inputs.Sin, past?.Key, past?.Value], trainable);
    }

    /// <summary>A throw-away cache holding only <paramref name="key"/>/<paramref name="value"/> [B, H_kv, P, D] at <paramref name="layer"/>.</summary>
    private static KeyValueCache PrefixCache(int layer, Tensor key, Tensor value)
    {
        var c = new KeyValueCache();
        c.Update(layer, key, value);
        return c;
    }
}
