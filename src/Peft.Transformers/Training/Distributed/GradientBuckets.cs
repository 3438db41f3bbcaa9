using Peft.Core.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers;

/// <summary>
/// Gradient averaging in flat buckets (PyTorch DDP's reducer without the backward overlap): gradients grouped by
/// dtype and device in parameter order, each group cut into buckets of at most a given size, each bucket copied into
/// one flat buffer, all-reduced (sum) once and divided by the world size; the gradients then become views of the
/// buffer (no copy back, and clipping / the multi-tensor optimizer read a bucket's gradients as one tensor).
/// </summary>
internal static class GradientBuckets
{
    /// <summary>Averages the gradients of <paramref name="parameters"/> over <paramref name="group"/>; missing gradients are created as zeros.</summary>
    public static void AllReduceMean(ICollectives group, IReadOnlyList<Parameter> parameters, long bucketBytes)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var p in parameters)
            if (p.grad is null) p.grad = zeros_like(p);
        foreach (var bucket in Buckets(parameters, bucketBytes))
        {
            using var inner = NewDisposeScope();
            var grads = bucket.Select(p => p.grad!).ToArray();
            var flat = cat(grads.Select(g => g.reshape(-1)).ToArray()); // [Σ numel]
            if (flat.device != group.Device) flat = flat.to(group.Device);
            group.AllReduce(flat);
            flat.div_(HeldScalars.Of(group.WorldSize));
            if (flat.device != grads[0].device) flat = flat.to(grads[0].device);
            long offset = 0;
            for (int i = 0; i < bucket.Count; i++)
            {
                bucket[i].grad = flat.narrow(0, offset, grads[i].numel()).view_as(grads[i]);
                offset += grads[i].numel();
            }
        }
    }

    /// <summary>Parameters grouped by (dtype, device) in first-seen order, each group cut at <paramref name="bucketBytes"/>.</summary>
    public static IEnumerable<IReadOnlyList<Parameter>> Buckets(IReadOnlyList<Parameter> parameters, long bucketBytes)
    {
        foreach (var group in parameters.GroupBy(p => (p.dtype, p.device.ToString())))
        {
            var bucket = new List<Parameter>();
            long bytes = 0;
            foreach (var p in group)
            {
                long size = p.numel() * p.ElementSize;
                if (bucket.Count > 0 && bytes + size > bucketBytes)
                {
                    yield return bucket;
                    (bucket, bytes) = ([], 0);
                }
                bucket.Add(p);
                bytes += size;
            }
            if (bucket.Count > 0) yield return bucket;
        }
    }
}
