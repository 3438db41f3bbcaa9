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

    /// <summary>
    /// The largest flat buffer the multi-tensor paths build on CUDA (AdamW's buckets, the clip's gradient buffers), in
    /// bytes: 128 MiB, or <c>PEFT_ADAMW_BUCKET_MB</c> (0 = no cap). Buffers of this size are blocks the CUDA caching
    /// allocator can place among a step's others; one buffer over all parameters kept it from reusing the blocks a
    /// forward freed (the Llama-1B shape's 2.1 GB bf16 parameters in one bucket: 16.1 GiB device peak vs 14.5 GiB with
    /// 128 MiB buckets and HF's 15.9 GiB; bench/README.md).
    /// </summary>
    public static long BucketCapBytes { get; } =
        (long.TryParse(Environment.GetEnvironmentVariable("PEFT_ADAMW_BUCKET_MB"), out long mb) && mb >= 0 ? mb : DefaultBucketCapMb) << 20;

    /// <summary>The default of <see cref="BucketCapBytes"/> in MiB.</summary>
    public const long DefaultBucketCapMb = 128;

    /// <summary>
    /// <paramref name="items"/> cut, in order, into consecutive runs of at most <paramref name="capBytes"/> (an item
    /// larger than the cap alone); <paramref name="capBytes"/> ≤ 0: one run.
    /// </summary>
    public static IEnumerable<List<T>> Runs<T>(IReadOnlyList<T> items, Func<T, long> bytesOf, long capBytes)
    {
        if (capBytes <= 0) { yield return items.ToList(); yield break; }
        var run = new List<T>();
        long bytes = 0;
        foreach (var x in items)
        {
            long b = bytesOf(x);
            if (run.Count > 0 && bytes + b > capBytes) { yield return run; (run, bytes) = (new List<T>(), 0); }
            run.Add(x);
            bytes += b;
        }
        if (run.Count > 0) yield return run;
    }

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
