using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>Blockwise absmax scaling shared by the 4-bit and 8-bit codecs (bnb's kernels' conventions).</summary>
internal static class Blockwise
{
    /// <summary>Valid 4-bit block sizes (bnb <c>quantize_4bit</c>).</summary>
    public static readonly int[] FourBitSizes = [32, 64, 128, 256, 512, 1024, 2048, 4096];

    /// <summary>
    /// Splits <paramref name="flat"/> [n] (any float dtype) into blocks of <paramref name="blocksize"/> (the last one
    /// may be partial), returns absmax [blocks] float32 (max |x| of the real elements of each block) and the scaled
    /// values [n] float32 = x · (1 / absmax), the reciprocal taken in float32 first as the kernel does.
    /// </summary>
    public static (Tensor Absmax, Tensor Scaled) Scale(Tensor flat, int blocksize)
    {
        using var scope = NewDisposeScope();
        long n = flat.shape[0];
        long blocks = (n + blocksize - 1) / blocksize;
        var x = flat.to_type(ScalarType.Float32);
        long pad = blocks * blocksize - n;
        if (pad > 0) x = nn.functional.pad(x, [0, pad]);                       // zeros do not change a block's absmax
        var grid = x.view(blocks, blocksize);                                 // [blocks, blocksize]
        var absmax = grid.abs().amax([1]);                                    // [blocks]
        var scaled = (grid * absmax.reciprocal().unsqueeze(1)).view(-1);      // [blocks · blocksize]
        if (pad > 0) scaled = scaled.narrow(0, 0, n);
        return (absmax.MoveToOuterDisposeScope(), scaled.contiguous().MoveToOuterDisposeScope());
    }

    /// <summary>values [n] float32 (codebook values) times the absmax of their block → [n] float32.</summary>
    public static Tensor Rescale(Tensor values, Tensor absmax, int blocksize)
    {
        using var scope = NewDisposeScope();
        long n = values.shape[0];
        long blocks = absmax.shape[0];
        long pad = blocks * blocksize - n;
        var v = pad > 0 ? nn.functional.pad(values, [0, pad]) : values;
        var r = (v.view(blocks, blocksize) * absmax.unsqueeze(1)).view(-1);   // [blocks · blocksize]
        if (pad > 0) r = r.narrow(0, 0, n);
        return r.MoveToOuterDisposeScope();
    }
}
