using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers.Models;

/// <summary>
/// Embedding tables that cost nothing when built for loading. TorchSharp's <c>nn.Embedding</c> (and
/// <c>Embedding_from_pretrained</c>) construct libtorch's module, which allocates and randomly initialises a float32
/// [count, dim] weight on the CPU whatever device is asked for; the module's native parameter list keeps that tensor
/// alive after the weight is moved or replaced, so a 128k × 2048 vocabulary held 1 GB for the model's lifetime. On the
/// meta device the module is instead created with a one-column table just large enough for its padding index (the
/// only size libtorch checks) and its weight set to a meta tensor of the real shape; the loader then puts the
/// checkpoint tensor in its place through the same <c>weight</c> setter.
/// </summary>
internal static class StoragelessEmbedding
{
    /// <summary>An embedding [<paramref name="count"/>, <paramref name="dim"/>] on <paramref name="device"/> (HF <c>nn.Embedding</c>); trainable.</summary>
    public static Embedding Create(long count, long dim, long? paddingIdx = null, Device? device = null)
    {
        if (device is null || device.type != DeviceType.META)
            return nn.Embedding(count, dim, padding_idx: paddingIdx, device: device);
        long? pad = paddingIdx is { } p && p < 0 ? p + count : paddingIdx;   // libtorch's rule for a negative index
        var e = nn.Embedding(pad is { } q ? q + 1 : 1, 1, padding_idx: pad);     // (pad + 1) floats, not count × dim
        e.weight = new Parameter(empty([count, dim], device: META));
        return e;
    }
}
