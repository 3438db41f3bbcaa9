using Peft.Core.Distributed.Nccl;
using static TorchSharp.torch;

namespace Peft.Transformers.Optimization;

/// <summary>
/// Flat (one-buffer) views over lists of tensors, for the multi-tensor optimizer and clipping paths: TorchSharp 0.107
/// has no <c>torch._foreach_*</c> kernels, so a list of tensors is updated with one kernel per op only when it lies
/// in one contiguous buffer.
/// </summary>
internal static class FlatTensors
{
    /// <summary>
    /// A 1-D view over <paramref name="tensors"/> (in order) when they are contiguous, of one dtype, and lie back to
    /// back in one storage (e.g. views of a flat buffer); else null. No copy, no kernel.
    /// </summary>
    public static Tensor? TryView(IReadOnlyList<Tensor> tensors)
    {
        if (tensors.Count == 0) return null;
        var first = tensors[0];
        long offset0 = first.storage_offset(), run = 0, elem = first.ElementSize;
        nint ptr0 = TensorMemory.DataPointer(first);
        foreach (var t in tensors)
        {
            // Equal data pointers AND storage offsets: two distinct storages cannot pass both (the second would need offset 0 = offset0 + run).
            if (t.dtype != first.dtype || !t.is_contiguous() || t.storage_offset() != offset0 + run || TensorMemory.DataPointer(t) != ptr0 + (nint)(run * elem))
                return null;
            run += t.numel();
        }
        return tensors.Count == 1 ? first.reshape(-1) : first.as_strided([run], [1], offset0); // [Σ numel]
    }

    /// <summary><see cref="TryView"/>, else one <c>cat</c> of the flattened tensors (a new buffer, one copy).</summary>
    public static Tensor ViewOrCat(IReadOnlyList<Tensor> tensors) =>
        TryView(tensors) ?? cat(tensors.Select(t => t.reshape(-1)).ToArray()); // [Σ numel]

    /// <summary>Element offsets of each tensor in a flat buffer of <paramref name="tensors"/>, and the total.</summary>
    public static (long[] Offsets, long Total) Layout(IReadOnlyList<Tensor> tensors)
    {
        var offsets = new long[tensors.Count];
        long total = 0;
        for (int i = 0; i < tensors.Count; i++)
        {
            offsets[i] = total;
            total += tensors[i].numel();
        }
        return (offsets, total);
    }
}
