using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Quantization;

/// <summary>
/// bitsandbytes' signed dynamic 8-bit code (<c>create_dynamic_map(signed=True, max_exponent_bits=7,
/// total_bits=8)</c>): 256 sorted float32 values in [-1, 1], dense near zero, used for blockwise 8-bit
/// quantisation of the 4-bit absmax statistics (double quantisation), and its nearest-code search exactly as the
/// CUDA kernel <c>dQuantize&lt;0&gt;</c> does it.
/// </summary>
internal static class DynamicMap
{
    private const int MaxExponentBits = 7;

    /// <summary>
    /// The 256 code values (float32, ascending; the caller owns the tensor). Built as bnb builds it: for exponent
    /// i = 0..6, the 2^i midpoints of <c>linspace(0.1, 1, 2^i + 1)</c> (float32) times 10^(i−6), both signs; then 0
    /// and 1; sorted.
    /// </summary>
    public static Tensor Create(Device? device = null)
    {
        using var scope = NewDisposeScope();
        var parts = new List<Tensor>();
        for (int i = 0; i < MaxExponentBits; i++)
        {
            int items = (1 << i) + 1;
            var b = linspace(0.1, 1, items, dtype: ScalarType.Float32);
            var means = b.narrow(0, 0, items - 1).add(b.narrow(0, 1, items - 1), HeldScalars.One) / HeldScalars.Of(2.0);
            double scale = Math.Pow(10, -(MaxExponentBits - 1) + i);
            parts.Add(means * HeldScalars.Of(scale));
            parts.Add(means * HeldScalars.Of(-scale));
        }
        parts.Add(tensor(new[] { 0f, 1f }));
        var code = cat(parts, 0).sort().Values;
        return code.to(device ?? CPU).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Codes [n] (int64) of <paramref name="x"/> [n] float32 (already scaled to [-1, 1]) against the ascending
    /// 256-value <paramref name="code"/>: bnb's binary search over pivots 127 ± 64 ± … ± 1, then the midpoint rule
    /// between the final pivot and its bracketing neighbour (a value exactly on a midpoint keeps the pivot; NaN → 0).
    /// </summary>
    public static Tensor Encode(Tensor x, Tensor code)
    {
        using var scope = NewDisposeScope();
        var device = x.device;
        var pivot = full(x.shape, HeldScalars.Of(127L), dtype: ScalarType.Int64, device: device);
        var upperPivot = full(x.shape, HeldScalars.Of(255L), dtype: ScalarType.Int64, device: device);
        var lowerPivot = zeros(x.shape, dtype: ScalarType.Int64, device: device);
        var val = code.index_select(0, pivot);
        for (long step = 64; step > 0; step >>= 1)
        {
            var above = x.gt(val);
            lowerPivot = where(above, pivot, lowerPivot);
            upperPivot = where(above, upperPivot, pivot);
            pivot = where(above, pivot + HeldScalars.Of(step), pivot - HeldScalars.Of(step));
            val = code.index_select(0, pivot);
        }
        // The kernel tracks lower/upper values starting at ±1 and reloads them from the code only at the ends
        // (pivot 0 / 255); inside they equal code[lowerPivot] / code[upperPivot].
        var lower = code.index_select(0, lowerPivot);
        var upper = code.index_select(0, upperPivot);
        var aboveFinal = x.gt(val);
        var upMid = upper.add(val, HeldScalars.One) * HeldScalars.Of(0.5f);
        var lowMid = lower.add(val, HeldScalars.One) * HeldScalars.Of(0.5f);
        var result = where(aboveFinal,
            where(x.gt(upMid), upperPivot, pivot),
            where(x.lt(lowMid), lowerPivot, pivot));
        return result.MoveToOuterDisposeScope();
    }
}
