namespace Peft.Core;

/// <summary>
/// Bounds on the sizes an <c>adapter_config.json</c> may ask for (the PEFT side of
/// <c>Peft.Transformers.ConfigLimits</c>), checked by each config's <see cref="PeftConfig.Validate"/> when the file is
/// read and when an adapter is added, before any adapter tensor is allocated: a LoRA rank of 10^9 or a prompt of
/// 10^9 virtual tokens fails fast naming the key and the value. The bounds sit far above every published adapter
/// (ranks up to a few thousand, alphas up to ~10^4, prompts of a few hundred tokens) and far below what would exhaust
/// a machine by accident. PEFT has no such check (it would try to allocate).
/// </summary>
public static class AdapterLimits
{
    /// <summary>Largest rank (LoRA <c>r</c> and <c>rank_pattern</c> values, AdaLoRA <c>init_r</c> / <c>target_r</c>).</summary>
    public const int MaxRank = 1 << 16;

    /// <summary>Largest |scale numerator| (LoRA <c>lora_alpha</c> and <c>alpha_pattern</c> values); must also be finite.</summary>
    public const double MaxAlpha = 1e6;

    /// <summary>Largest number of virtual tokens (prompt learning <c>num_virtual_tokens</c>).</summary>
    public const int MaxVirtualTokens = 1 << 16;

    /// <summary>Largest width (prompt learning <c>token_dim</c>, <c>encoder_hidden_size</c>, <c>num_attention_heads</c>).</summary>
    public const int MaxDim = 1 << 18;

    /// <summary>Largest layer count (prompt learning <c>num_layers</c>, P-tuning <c>encoder_num_layers</c>, LoRA <c>layers_to_transform</c> indices).</summary>
    public const int MaxLayers = 4096;

    /// <summary>Largest number of elements of one adapter tensor (2^32: 16 GiB in float32).</summary>
    public const long MaxElements = 1L << 32;

    /// <summary>Throws naming <paramref name="owner"/> and <paramref name="key"/> unless 0 &lt; <paramref name="value"/> &lt;= <paramref name="max"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not positive or above its bound.</exception>
    public static void Size(string owner, string key, long value, long max)
    {
        if (value <= 0) throw new ArgumentOutOfRangeException(key, value, $"{owner}.{key} must be > 0, got {value}.");
        if (value > max) throw new ArgumentOutOfRangeException(key, value, $"{owner}.{key} {value} is larger than the limit of {max}; refusing before allocating.");
    }

    /// <summary>Throws naming the key unless <paramref name="value"/> is finite, positive and at most <see cref="MaxAlpha"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not a usable alpha.</exception>
    public static void Alpha(string owner, string key, double value)
    {
        if (!(value > 0) || !double.IsFinite(value)) throw new ArgumentOutOfRangeException(key, value, $"{owner}.{key} must be a finite number > 0, got {value}.");
        if (value > MaxAlpha) throw new ArgumentOutOfRangeException(key, value, $"{owner}.{key} {value} is larger than the limit of {MaxAlpha}; it would scale the adapter's output by that much.");
    }

    /// <summary>Throws naming the keys unless the product of <paramref name="sizes"/> is at most <see cref="MaxElements"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The tensor the sizes describe is too large.</exception>
    public static void Elements(string owner, string what, params long[] sizes)
    {
        ArgumentNullException.ThrowIfNull(sizes);
        double n = sizes.Aggregate(1.0, (a, s) => a * s);
        if (n > MaxElements)
            throw new ArgumentOutOfRangeException(what, n, $"{owner}: {what} would hold {n:E2} elements, more than the limit of {MaxElements:E2}; refusing before allocating.");
    }
}
