using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Quantization;

/// <summary>
/// Blockwise 4-bit quantisation with bitsandbytes' conventions (bnb <c>quantize_4bit</c> / <c>dequantize_4bit</c>),
/// so packed tensors and states are interchangeable with bnb's: blocks of <c>blocksize</c> consecutive elements of
/// the flattened tensor, a float32 absmax per block, each element scaled by 1/absmax and mapped to the nearest code
/// (<see cref="FourBitFormat.Encode"/>), two codes per byte with the first element in the HIGH nibble, packed as
/// uint8 [ceil(n / 2), 1]. Double quantisation (bnb <c>compress_statistics</c>): offset = mean(absmax); absmax −
/// offset is quantised blockwise (256) to the dynamic 8-bit code (<see cref="DynamicMap"/>).
/// All work is vectorised tensor code on the input's device.
/// </summary>
public static class FourBitCodec
{
    /// <summary>Block size of the second (8-bit) level of double quantisation, as bnb.</summary>
    public const int NestedBlocksize = 256;

    /// <summary>Elements quantised per step (2^20: whole blocks for every block size, even).</summary>
    private const long ChunkElements = 1L << 20;

    /// <summary>
    /// Quantises <paramref name="weight"/> (float32 / float16 / bfloat16, any shape). Returns the packed codes
    /// uint8 [ceil(n/2), 1] (caller owns it) and the state (caller owns it).
    /// </summary>
    /// <exception cref="ArgumentException">Unsupported dtype or block size.</exception>
    public static (Tensor Packed, QuantState State) Quantize(Tensor weight, FourBitFormat format, int blocksize = 64, bool doubleQuant = false)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(format);
        if (!Blockwise.FourBitSizes.Contains(blocksize))
            throw new ArgumentException($"blocksize {blocksize} is not one of {string.Join(", ", Blockwise.FourBitSizes)}.", nameof(blocksize));
        if (weight.dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
            throw new ArgumentException($"4-bit quantisation needs a float32/float16/bfloat16 tensor, got {weight.dtype}.", nameof(weight));
        using var scope = NewDisposeScope();
        var flat = weight.reshape(-1);
        long n = flat.shape[0];
        var packed = empty([(n + 1) / 2, 1], dtype: ScalarType.Byte, device: weight.device);
        var absmax = empty((n + blocksize - 1) / blocksize, dtype: ScalarType.Float32, device: weight.device);
        // Chunks of whole blocks (2^20 elements, a multiple of every block size and even): the float32 and int64
        // temporaries stay a few MB whatever the tensor's size; blocks never straddle chunks, so the result is the
        // same as quantising the whole tensor at once.
        for (long start = 0; start < n; start += ChunkElements)
        {
            using var chunkScope = NewDisposeScope();
            long len = Math.Min(ChunkElements, n - start);
            var (chunkAbsmax, scaled) = Blockwise.Scale(flat.narrow(0, start, len), blocksize);
            if (len % 2 != 0) scaled = nn.functional.pad(scaled, [0, 1]);      // bnb pads odd lengths with the value 0
            var codes = format.Encode(scaled);                                  // [len (+1)] 0..15
            var pairs = codes.view(-1, 2);                                      // [len/2, 2]
            var bytes = (pairs.select(1, 0) * HeldScalars.Of(16)).add(pairs.select(1, 1), HeldScalars.One).to_type(ScalarType.Byte);   // first → high nibble
            packed.narrow(0, start / 2, bytes.shape[0]).copy_(bytes.unsqueeze(1));
            absmax.narrow(0, start / blocksize, chunkAbsmax.shape[0]).copy_(chunkAbsmax);
        }
        var code = format.CodebookTensor(weight.device);
        NestedQuantState? nested = null;
        if (doubleQuant)
        {
            float offset = absmax.mean().item<float>();
            var (q, absmax2) = QuantizeBlockwise8(absmax - HeldScalars.Of(offset), NestedBlocksize, out var dyn);
            nested = new NestedQuantState(absmax2.MoveToOuterDisposeScope(), dyn.MoveToOuterDisposeScope(), NestedBlocksize, offset);
            absmax = q;
        }
        var state = new QuantState(format, absmax.MoveToOuterDisposeScope(), code.MoveToOuterDisposeScope(), blocksize, weight.shape.ToArray(), weight.dtype, nested);
        return (packed.MoveToOuterDisposeScope(), state);
    }

    /// <summary>
    /// Dequantises <paramref name="packed"/> with <paramref name="state"/> into a tensor of the original shape in
    /// <paramref name="dtype"/>: code[idx] · absmax computed in float32, then cast (bnb's kernel). Caller owns it.
    /// </summary>
    public static Tensor Dequantize(Tensor packed, QuantState state, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(packed);
        ArgumentNullException.ThrowIfNull(state);
        using var scope = NewDisposeScope();
        var codes = Unpack(packed, state.NumElements);                          // [n] int64
        var values = state.Code.index_select(0, codes);                         // [n] float32
        var absmax = state.FloatAbsmax();
        var w = Blockwise.Rescale(values, absmax, state.Blocksize).to_type(dtype).view(state.Shape);
        return w.MoveToOuterDisposeScope();
    }

    /// <summary>The 4-bit codes [n] (int64) of a packed uint8 tensor: high nibble first.</summary>
    public static Tensor Unpack(Tensor packed, long n)
    {
        using var scope = NewDisposeScope();
        var bytes = packed.reshape(-1).to_type(ScalarType.Int64);
        var codes = stack([bytes.bitwise_right_shift(4), bytes.bitwise_and(0xF)], 1).view(-1);   // [2 · bytes]
        return codes.narrow(0, 0, n).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// bnb <c>quantize_blockwise</c> with the dynamic code: codes uint8 [n] and absmax float32 [blocks] of
    /// <paramref name="x"/> [n]; <paramref name="code"/> receives the dynamic map used. Tensors are in the caller's scope.
    /// </summary>
    public static (Tensor Codes, Tensor Absmax) QuantizeBlockwise8(Tensor x, int blocksize, out Tensor code)
    {
        code = DynamicMap.Create(x.device);
        var (absmax, scaled) = Blockwise.Scale(x.reshape(-1), blocksize);
        using var idx = DynamicMap.Encode(scaled, code);
        scaled.Dispose();
        return (idx.to_type(ScalarType.Byte), absmax);
    }
}
