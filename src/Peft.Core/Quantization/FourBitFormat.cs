using TorchSharp;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Quantization;

/// <summary>
/// A 4-bit code of bitsandbytes: the 16 values an index stands for (<c>quant_map</c>, HF/bnb
/// <c>get_4bit_type</c>) and the rule that maps a value scaled to [-1, 1] onto an index, exactly as bnb's CUDA
/// kernels do (<c>dQuantizeNF4</c> / <c>dQuantizeFP4</c>: a decision tree with strict "&gt;" at fixed pivots, so a
/// value on a pivot takes the lower code; NaN — an all-zero block scaled by 1/0 — takes code 0).
/// </summary>
public abstract class FourBitFormat
{
    /// <summary>NormalFloat4 (QLoRA): 16 quantiles of N(0, 1) scaled to [-1, 1], index order = value order.</summary>
    public static FourBitFormat Nf4 { get; } = new Nf4Format();

    /// <summary>bnb's FP4 (1 sign, 2 exponent, 1 mantissa bit; values /12): bit 3 is the sign.</summary>
    public static FourBitFormat Fp4 { get; } = new Fp4Format();

    private static readonly FourBitFormat[] All = [Nf4, Fp4];

    /// <summary>The HF name: "nf4" or "fp4".</summary>
    public abstract string Name { get; }

    /// <summary>The value of each index 0..15 (bnb <c>quant_map</c>), float32.</summary>
    public abstract IReadOnlyList<float> Codebook { get; }

    /// <summary>
    /// Codes [n] (int32 or int64, 0..15) of <paramref name="scaled"/> [n] float32, each value already multiplied by
    /// 1/absmax of its block. The caller owns the result.
    /// </summary>
    public abstract Tensor Encode(Tensor scaled);

    /// <summary>The codebook as a float32 tensor [16] on <paramref name="device"/> (caller owns it).</summary>
    public Tensor CodebookTensor(Device? device = null) => tensor(Codebook.ToArray(), dtype: ScalarType.Float32, device: device);

    /// <summary>The format called <paramref name="name"/> ("nf4" / "fp4", HF <c>bnb_4bit_quant_type</c>).</summary>
    /// <exception cref="ArgumentException">Unknown name.</exception>
    public static FourBitFormat FromName(string name) =>
        All.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.Ordinal))
        ?? throw new ArgumentException($"bnb_4bit_quant_type '{name}' is not supported; expected one of: {string.Join(", ", All.Select(f => f.Name))}.", nameof(name));

    /// <summary>Number of <paramref name="thresholds"/> (ascending) each value is strictly greater than; NaN → 0.</summary>
    private protected static Tensor CountAbove(Tensor x, float[] thresholds)
    {
        using var scope = NewDisposeScope();
        using var thr = tensor(thresholds, dtype: ScalarType.Float32, device: x.device);
        var idx = bucketize(x, thr, outInt32: true, right: false);    // count(thr < x), int32 to halve the temporary
        idx.masked_fill_(x.isnan(), HeldScalars.Of(0));
        return idx.MoveToOuterDisposeScope();
    }

    private sealed class Nf4Format : FourBitFormat
    {
        private static readonly float[] Values =
        [
            -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
            -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
            0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
            0.7229568362236023f, 1.0f,
        ];

        // The pivots of bnb's dQuantizeNF4 tree (midpoints of neighbouring codes, as float32 literals), ascending.
        private static readonly float[] Pivots =
        [
            -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
            -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
            0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
            0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f,
        ];

        public override string Name => "nf4";
        public override IReadOnlyList<float> Codebook => Values;
        public override Tensor Encode(Tensor scaled) => CountAbove(scaled, Pivots);
    }

    private sealed class Fp4Format : FourBitFormat
    {
        // bnb's fp4 dequantization table (bit pattern order; bit 3 = sign), equal to get_4bit_type("fp4").
        private static readonly float[] Values =
        [
            0.0f, 0.005208333333f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f,
            -0.0f, -0.005208333333f, -0.66666667f, -1.0f, -0.33333333f, -0.5f, -0.16666667f, -0.25f,
        ];

        // dQuantizeFP4's pivots on |x| (literals as in the kernel), ascending; and the bit pattern of each magnitude rank.
        private static readonly float[] Pivots = [0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f];
        private static readonly long[] PatternOfRank = [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011];

        public override string Name => "fp4";
        public override IReadOnlyList<float> Codebook => Values;

        public override Tensor Encode(Tensor scaled)
        {
            using var scope = NewDisposeScope();
            var rank = CountAbove(scaled.abs(), Pivots);                              // [n] 0..7
            var pattern = tensor(PatternOfRank, device: scaled.device).index_select(0, rank.to_type(ScalarType.Int64));
            var sign = scaled.lt(HeldScalars.Of(0)).to_type(ScalarType.Int64) * HeldScalars.Of(8);                    // NaN < 0 is false
            return pattern.add(sign, HeldScalars.One).MoveToOuterDisposeScope();
        }
    }
}
