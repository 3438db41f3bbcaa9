using Peft.Core.Quantization;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Quantization;

public class FourBitCodecTests
{
    private static readonly float[] Nf4 =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    [Fact]
    public void Nf4CodebookIsTheIssueTableInIndexOrder()
    {
        Assert.Equal(Nf4, FourBitFormat.Nf4.Codebook);
        Assert.Equal("nf4", FourBitFormat.FromName("nf4").Name);
        Assert.Throws<ArgumentException>(() => FourBitFormat.FromName("int4"));
    }

    [Fact]
    public void Fp4CodebookIsBnbsTableDividedByTwelve()
    {
        // bnb get_4bit_type("fp4"): [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3] / 12
        double[] raw = [0, 0.0625, 8, 12, 4, 6, 2, 3, -0.0, -0.0625, -8, -12, -4, -6, -2, -3];
        Assert.Equal(raw.Select(v => (float)(v / 12)).ToArray(), FourBitFormat.Fp4.Codebook);
    }

    [Fact]
    public void EachCodebookValueEncodesToItsOwnIndex()
    {
        foreach (var f in new[] { FourBitFormat.Nf4, FourBitFormat.Fp4 })
        {
            using var values = f.CodebookTensor();
            using var codes = f.Encode(values);
            var expected = Enumerable.Range(0, 16).Select(i => (long)i).ToArray();
            if (f == FourBitFormat.Fp4) expected[8] = 0;   // +0 and −0: −0 is not < 0, so it takes the + code as the kernel does
            Assert.Equal(expected, codes.to_type(ScalarType.Int64).data<long>().ToArray());
        }
    }

    [Fact]
    public void Nf4HandCheckedBlockPacksFirstElementInHighNibble()
    {
        // One block of 32 with absmax 2: 2 → 15 (1.0); −1 → −0.5 lies below pivot −0.45999 → 2; 0 → 7; 0.1 → 0.05 lies
        // between pivots 0.0398 and 0.1203 → 8; the remaining zeros → 7. Bytes: 0xF2, 0x78, then 0x77.
        var data = new float[32];
        data[0] = 2f; data[1] = -1f; data[2] = 0f; data[3] = 0.1f;
        using var w = tensor(data).view(1, 32);
        var (packed, state) = FourBitCodec.Quantize(w, FourBitFormat.Nf4, blocksize: 32);
        using (packed)
        using (state)
        {
            Assert.Equal(new long[] { 16, 1 }, packed.shape);
            Assert.Equal(ScalarType.Byte, packed.dtype);
            var bytes = packed.data<byte>().ToArray();
            Assert.Equal(0xF2, bytes[0]);
            Assert.Equal(0x78, bytes[1]);
            Assert.All(bytes.Skip(2), b => Assert.Equal(0x77, b));
            Assert.Equal(new[] { 2f }, state.Absmax.data<float>().ToArray());
            using var back = FourBitCodec.Dequantize(packed, state, ScalarType.Float32);
            Assert.Equal(new long[] { 1, 32 }, back.shape);
            var v = back.data<float>().ToArray();
            Assert.Equal(2f, v[0]);
            Assert.Equal(Nf4[2] * 2f, v[1]);
            Assert.Equal(0f, v[2]);
            Assert.Equal(Nf4[8] * 2f, v[3]);
        }
    }

    [Fact]
    public void ValueOnAPivotTakesTheLowerCodeAsBnbsStrictGreaterThan()
    {
        var data = new float[64];
        data[0] = 1f;                               // absmax 1, so scaled == value
        data[1] = 0.03979014977812767f;             // pivot between codes 7 and 8 → 7
        data[2] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(0.03979014977812767f) + 1); // just above → 8
        data[3] = -0.8480964004993439f;             // pivot between 0 and 1 → 0
        using var w = tensor(data);
        var (packed, state) = FourBitCodec.Quantize(w, FourBitFormat.Nf4);
        using (packed)
        using (state)
        using (var codes = FourBitCodec.Unpack(packed, 64))
        {
            var c = codes.data<long>().ToArray();
            Assert.Equal(new long[] { 15, 7, 8, 0 }, c.Take(4).ToArray());
        }
    }

    [Fact]
    public void Fp4HandCheckedCodes()
    {
        // absmax 1: 1 → 0b0011; −1 → 0b1011; 0.3 (> 0.29166667) → 0b100 (1/3); −0.001 → sign + 0 = 8; 0.2 → 0b110 (1/6);
        // 0.0859375 exactly on a pivot → lower rank 0b001.
        var data = new float[64];
        float[] head = [1f, -1f, 0.3f, -0.001f, 0.2f, 0.0859375f];
        head.CopyTo(data, 0);
        using var w = tensor(data);
        var (packed, state) = FourBitCodec.Quantize(w, FourBitFormat.Fp4);
        using (packed)
        using (state)
        using (var codes = FourBitCodec.Unpack(packed, 64))
        {
            Assert.Equal(new long[] { 3, 11, 4, 8, 6, 1 }, codes.data<long>().ToArray().Take(6).ToArray());
            Assert.Equal((0b0011 << 4) | 0b1011, packed.data<byte>()[0]);
        }
    }

    [Fact]
    public void AllZeroBlockGivesCodeZeroAndDequantisesToZero()
    {
        using var w = zeros(2, 32);
        var (packed, state) = FourBitCodec.Quantize(w, FourBitFormat.Nf4, blocksize: 32);
        using (packed)
        using (state)
        using (var back = FourBitCodec.Dequantize(packed, state, ScalarType.Float32))
        {
            Assert.All(packed.data<byte>().ToArray(), b => Assert.Equal(0, b));   // NaN (0 · 1/0) takes code 0, as the kernel's tree
            Assert.Equal(0.0, back.abs().max().item<float>());
        }
    }

    [Theory]
    [InlineData("nf4", 64, false, 0.1520)]
    [InlineData("nf4", 128, true, 0.1520)]
    [InlineData("fp4", 64, false, 0.1667)]
    [InlineData("nf4", 32, false, 0.1520)]
    public void RoundTripErrorIsWithinHalfTheLargestCodeGapTimesAbsmax(string type, int blocksize, bool doubleQuant, double halfGap)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(7);
        var w = randn([48, 96], generator: gen) * 0.05;
        var (packed, state) = FourBitCodec.Quantize(w, FourBitFormat.FromName(type), blocksize, doubleQuant);
        using (state)
        {
            var back = FourBitCodec.Dequantize(packed, state, ScalarType.Float32);
            var blockAbsmax = w.reshape(-1, blocksize).abs().amax([1], keepdim: true);       // [blocks, 1]
            var err = (back - w).reshape(-1, blocksize).abs();
            double slack = doubleQuant ? 1.02 : 1.0 + 1e-6;                                    // 8-bit absmax adds < 2 %
            Assert.True((err <= blockAbsmax * (halfGap * slack) + 1e-7).all().item<bool>(), $"{type}: error above bound");
            double rel = ((back - w).norm() / w.norm()).item<float>();
            Assert.InRange(rel, 0.0, type == "nf4" ? 0.12 : 0.2);
        }
    }

    [Fact]
    public void OddLengthAndPartialLastBlockFollowBnb()
    {
        using var scope = NewDisposeScope();
        var w = linspace(-1, 1, 101).view(1, 101);         // 2 blocks of 64: the second has 37 real elements
        var (packed, state) = FourBitCodec.Quantize(w, FourBitFormat.Nf4);
        using (state)
        {
            Assert.Equal(new long[] { 51, 1 }, packed.shape);                    // ceil(101 / 2)
            Assert.Equal(2, state.Absmax.shape[0]);
            var absmax = state.Absmax.data<float>().ToArray();
            Assert.Equal(1f, absmax[0]);                                          // |−1|, the first element
            Assert.Equal(1f, absmax[1]);                                          // the real last element
            Assert.Equal(7, packed.data<byte>()[50] & 0x0F);                      // the padding element is the zero code 7
            var back = FourBitCodec.Dequantize(packed, state, ScalarType.Float32);
            Assert.Equal(new long[] { 1, 101 }, back.shape);
        }
    }

    [Fact]
    public void DoubleQuantKeepsMeanAsOffsetAndBlocksOf256()
    {
        using var scope = NewDisposeScope();
        var w = randn([64, 512], generator: new Generator(3));    // 512 blocks of 64 → 2 nested blocks
        var (plainPacked, plain) = FourBitCodec.Quantize(w, FourBitFormat.Nf4);
        var (dqPacked, dq) = FourBitCodec.Quantize(w, FourBitFormat.Nf4, doubleQuant: true);
        using (plain)
        using (dq)
        {
            TensorAssert.Equal(plainPacked, dqPacked, "codes do not depend on double quantisation");
            Assert.NotNull(dq.Nested);
            Assert.Equal(ScalarType.Byte, dq.Absmax.dtype);
            Assert.Equal(512, dq.Absmax.shape[0]);
            Assert.Equal(2, dq.Nested!.Absmax.shape[0]);
            Assert.Equal(256, dq.Nested.Blocksize);
            Assert.Equal(plain.Absmax.mean().item<float>(), dq.Nested.Offset);
            var restored = dq.FloatAbsmax();
            var centred = plain.Absmax - dq.Nested.Offset;
            var bound = centred.abs().max().item<float>() * 0.5 * (1 - 0.9296875) + 1e-6;  // ≤ half the widest dynamic-code gap
            TensorAssert.Close(plain.Absmax, restored, bound, what: "nested absmax");
        }
    }

    [Fact]
    public void BlocksizeAndDtypeAreValidated()
    {
        using var w = ones(4, 64);
        Assert.Throws<ArgumentException>(() => FourBitCodec.Quantize(w, FourBitFormat.Nf4, blocksize: 48));
        using var i = ones(4, 64, dtype: ScalarType.Int32);
        Assert.Throws<ArgumentException>(() => FourBitCodec.Quantize(i, FourBitFormat.Nf4));
    }

    [Fact]
    public void QuantizeAndDequantizeDoNotLeak()
    {
        using var w = randn(32, 64);
        LeakCheck.AssertNoGrowth(() =>
        {
            var (p, s) = FourBitCodec.Quantize(w, FourBitFormat.Nf4, doubleQuant: true);
            using (p)
            using (s)
            using (FourBitCodec.Dequantize(p, s, ScalarType.BFloat16)) { }
        }, iterations: 10, what: "4-bit codec");
    }

    /// <summary>
    /// Tensors larger than one quantisation chunk (2^20 elements), odd length: every block holds exact codebook values
    /// times its scale with one element at +1, so a correct codec (blocks and packed bytes at the right offsets across
    /// chunk boundaries) gives them back exactly.
    /// </summary>
    [Theory]
    [InlineData("nf4", 64)]
    [InlineData("fp4", 4096)]
    [InlineData("nf4", 32)]
    public void TensorsSpanningSeveralChunksRoundTripExactly(string type, int blocksize)
    {
        using var scope = NewDisposeScope();
        var format = FourBitFormat.FromName(type);
        long n = 3 * (1L << 20) + 101;
        var gen = new Generator(11);
        var table = format.CodebookTensor();
        int one = format.Codebook.ToList().IndexOf(1.0f);
        var idx = randint(0, 16, [n], generator: gen);
        idx.view(-1).index_put_(tensor(one, dtype: ScalarType.Int64), arange(0, n, blocksize));   // +1 at each block's start
        long blocks = (n + blocksize - 1) / blocksize;
        var scale = (rand([blocks], generator: gen) + 0.5f).repeat_interleave(blocksize).narrow(0, 0, n);
        var x = (table.index_select(0, idx) * scale).view(n);
        var (packed, state) = FourBitCodec.Quantize(x, format, blocksize);
        using (state)
        {
            Assert.Equal((n + 1) / 2, packed.shape[0]);
            Assert.Equal(blocks, state.Absmax.shape[0]);
            TensorAssert.Equal(x, FourBitCodec.Dequantize(packed, state, ScalarType.Float32), $"{type} {blocksize}");
        }
    }
}
