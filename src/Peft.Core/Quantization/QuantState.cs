using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Quantization;

/// <summary>
/// Everything needed to dequantize a 4-bit tensor (bnb <c>QuantState</c>): the per-block absmax (float32, or
/// 8-bit codes when double-quantised), the 16-value code, the block size, the original shape and dtype, and for
/// double quantisation the offset (mean of the absmax) and the nested 8-bit state. Owns its tensors (detached,
/// outside any dispose scope).
/// </summary>
public sealed class QuantState : IDisposable
{
    /// <summary>Creates a state; takes ownership of the tensors (they are detached from dispose scopes).</summary>
    public QuantState(FourBitFormat format, Tensor absmax, Tensor code, int blocksize, long[] shape, ScalarType dtype, NestedQuantState? nested = null)
    {
        Format = format;
        Absmax = absmax.DetachFromDisposeScope();
        Code = code.DetachFromDisposeScope();
        Blocksize = blocksize;
        Shape = shape;
        Dtype = dtype;
        Nested = nested;
    }

    /// <summary>The 4-bit format (bnb <c>quant_type</c>).</summary>
    public FourBitFormat Format { get; }
    /// <summary>Per-block absmax [blocks]: float32, or uint8 codes of the dynamic map when <see cref="Nested"/> is set (bnb <c>absmax</c>).</summary>
    public Tensor Absmax { get; private set; }
    /// <summary>The 16 code values, float32 (bnb <c>code</c>, saved as <c>quant_map</c>).</summary>
    public Tensor Code { get; private set; }
    /// <summary>Elements per block (bnb <c>blocksize</c>).</summary>
    public int Blocksize { get; }
    /// <summary>Shape of the original tensor (bnb <c>shape</c>).</summary>
    public long[] Shape { get; }
    /// <summary>Dtype of the original tensor (bnb <c>dtype</c>).</summary>
    public ScalarType Dtype { get; }
    /// <summary>The double-quantisation state, or null (bnb <c>state2</c> + <c>offset</c>).</summary>
    public NestedQuantState? Nested { get; }

    /// <summary>Number of elements of the original tensor.</summary>
    public long NumElements => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>The float32 absmax [blocks]: <see cref="Absmax"/> itself, or its 8-bit dequantisation plus the offset. Caller owns it.</summary>
    public Tensor FloatAbsmax() => Nested is { } n ? n.Dequantize(Absmax) : Absmax.alias();

    /// <summary>The tensors of the state, in bnb's serialised names (without the "weight." prefix).</summary>
    public IEnumerable<(string Name, Tensor Tensor)> Tensors()
    {
        yield return ("absmax", Absmax);
        yield return ("quant_map", Code);
        if (Nested is { } n)
        {
            yield return ("nested_absmax", n.Absmax);
            yield return ("nested_quant_map", n.Code);
        }
    }

    /// <summary>Moves every tensor to <paramref name="device"/> (the old ones are disposed).</summary>
    public void MoveTo(Device device)
    {
        Absmax = Move(Absmax, device);
        Code = Move(Code, device);
        Nested?.MoveTo(device);
    }

    internal static Tensor Move(Tensor t, Device device)
    {
        if (t.device.type == device.type && t.device.index == device.index) return t;
        var moved = t.to(device).DetachFromDisposeScope();
        t.Dispose();
        return moved;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Absmax.Dispose();
        Code.Dispose();
        Nested?.Dispose();
    }
}

/// <summary>
/// The second level of double quantisation (bnb <c>state2</c>): the 4-bit absmax minus <see cref="Offset"/>,
/// quantised blockwise (blocks of 256) to the dynamic 8-bit code.
/// </summary>
public sealed class NestedQuantState : IDisposable
{
    /// <summary>Creates the state; takes ownership of the tensors.</summary>
    public NestedQuantState(Tensor absmax, Tensor code, int blocksize, float offset)
    {
        Absmax = absmax.DetachFromDisposeScope();
        Code = code.DetachFromDisposeScope();
        Blocksize = blocksize;
        Offset = offset;
    }

    /// <summary>Per-block absmax of the first-level absmax [ceil(blocks / 256)], float32 (bnb <c>nested_absmax</c>).</summary>
    public Tensor Absmax { get; private set; }
    /// <summary>The 256-value dynamic code, float32 (bnb <c>nested_quant_map</c>).</summary>
    public Tensor Code { get; private set; }
    /// <summary>Block size of the second level (256; bnb <c>nested_blocksize</c>).</summary>
    public int Blocksize { get; }
    /// <summary>The mean of the first-level absmax, subtracted before quantising (bnb <c>nested_offset</c>).</summary>
    public float Offset { get; }

    /// <summary>code[q] · absmax2[block] + offset, float32 [blocks] (bnb <c>dequantize_blockwise(...) + offset</c>). Caller owns it.</summary>
    public Tensor Dequantize(Tensor codes)
    {
        using var scope = NewDisposeScope();
        var values = Code.index_select(0, codes.to_type(ScalarType.Int64));
        var r = Blockwise.Rescale(values, Absmax, Blocksize) + HeldScalars.Of(Offset);
        return r.MoveToOuterDisposeScope();
    }

    internal void MoveTo(Device device)
    {
        Absmax = QuantState.Move(Absmax, device);
        Code = QuantState.Move(Code, device);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Absmax.Dispose();
        Code.Dispose();
    }
}
