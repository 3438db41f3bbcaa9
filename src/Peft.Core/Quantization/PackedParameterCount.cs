using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>
/// PEFT's parameter counting for bnb layers (<c>get_nb_trainable_parameters</c>): a packed 4-bit weight (bnb
/// <c>Params4bit</c>) counts <c>numel · 2 · element_size</c> — the number of 4-bit values it holds — while every other
/// parameter (an int8 weight included) counts its <c>numel</c>.
/// </summary>
public static class PackedParameterCount
{
    /// <summary>Handles of the packed 4-bit weights in <paramref name="model"/> with the multiplier PEFT applies to their numel.</summary>
    public static IReadOnlyDictionary<IntPtr, long> Multipliers(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var d = new Dictionary<IntPtr, long>();
        foreach (var l in model.modules().OfType<Linear4bit>()) d[l.weight.Handle] = 2L * l.weight.ElementSize;
        return d;
    }

    /// <summary>The count PEFT gives <paramref name="p"/>, with <paramref name="multipliers"/> from <see cref="Multipliers"/>.</summary>
    public static long Count(Tensor p, IReadOnlyDictionary<IntPtr, long> multipliers)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(multipliers);
        return multipliers.TryGetValue(p.Handle, out var m) ? p.numel() * m : p.numel();
    }
}
