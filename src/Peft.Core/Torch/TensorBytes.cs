using TorchSharp;

namespace Peft.Core.Torch;

/// <summary>
/// Raw access to a contiguous CPU tensor's bytes of any size. TorchSharp's <c>Tensor.bytes</c> span is limited to
/// 2 GiB, so larger tensors are visited in chunks through 1-D views (each view is contiguous).
/// </summary>
internal static class TensorBytes
{
    private const long ChunkBytes = 1L << 30;

    /// <summary>Calls <paramref name="visit"/> with consecutive spans covering all of the tensor's bytes, in order.</summary>
    /// <param name="tensor">A contiguous CPU tensor.</param>
    /// <param name="visit">Receives (offset in bytes, span); the span may be written to.</param>
    public static void Visit(torch.Tensor tensor, Action<long, Span<byte>> visit)
    {
        if (tensor.device_type != DeviceType.CPU || !tensor.is_contiguous())
            throw new ArgumentException("TensorBytes needs a contiguous CPU tensor.", nameof(tensor));
        long total = tensor.NumberOfElements * tensor.ElementSize;
        if (total == 0) return;
        if (total <= ChunkBytes)
        {
            visit(0, tensor.bytes);
            return;
        }
        long perChunk = ChunkBytes / tensor.ElementSize;
        using var flat = tensor.view(-1);
        long n = tensor.NumberOfElements;
        for (long start = 0; start < n; start += perChunk)
        {
            using var part = flat.narrow(0, start, Math.Min(perChunk, n - start));
            visit(start * tensor.ElementSize, part.bytes);
        }
    }
}
