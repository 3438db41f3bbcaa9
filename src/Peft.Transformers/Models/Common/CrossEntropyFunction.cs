using Peft.Core.Torch;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Peft.Transformers.Models;

/// <summary>
/// Mean cross-entropy over the rows whose label is not −100, as one autograd node (torch
/// <c>cross_entropy(logits.float(), target, ignore_index=-100)</c>, the loss HF's causal-LM and token heads use).
/// </summary>
/// <remarks>
/// torch's composite saves the float32 log-softmax [N, C] for backward and, in backward, fills a zero [N, C] gradient
/// for nll and allocates another [N, C] for log-softmax's backward. This node keeps only the logits (which the model
/// output holds anyway), the labels and the count: the forward's log-softmax is a temporary (on the CPU made in
/// blocks of rows of about 8 MiB, never as a whole [N, C]), and backward writes
/// (softmax(x) − onehot(label)) · g / n_valid into one float32 buffer (rows with label −100 get zeros), cast to the
/// logits' dtype as <c>.float()</c>'s backward does. Same math as torch in float32 up to rounding: the loss is
/// −Σ log_softmax(x)[label] / n_valid; with no valid label it is 0 / 0 = NaN and the gradient is zero (torch's
/// behaviour). No host synchronisation.
/// <para>Memory as torch's nodes, which free their saved tensors once their backward ran (TorchSharp 0.107's custom
/// nodes keep them until the graph is destroyed, i.e. until the loss tensor is disposed): the logits are saved through
/// a storage-sharing tensor of this node's own, whose storage is detached (<c>set_</c> to an empty one) at the end of
/// backward, so the [N, V] logits buffer is not held through the rest of backward and the optimizer step. A second
/// backward through the same loss therefore fails: autograd's engine raises "invalid gradient at index 0" at the
/// <c>backward()</c> call (torch raises likewise without <c>retain_graph=True</c>; this node does not support retaining
/// the graph). With a <see cref="GradientHandoff"/> the returned gradient's handle is released once the LM head's
/// backward consumed it.</para>
/// </remarks>
internal sealed class CrossEntropyFunction : SingleTensorFunction<CrossEntropyFunction>
{
    /// <summary>The label value that does not count (torch's default <c>ignore_index</c>).</summary>
    public const long IgnoreIndex = -100;

    private const string DtypeKey = "dtype", HandoffKey = "handoff", ReleasedKey = "released";

    /// <inheritdoc />
    public override string Name => nameof(CrossEntropyFunction);

    /// <summary>
    /// logits [N, C] (any floating dtype, upcast to float32), target [N] int64 on the logits' device with values in
    /// [0, C) or −100 → float32 scalar, differentiable with respect to <paramref name="logits"/>.
    /// <paramref name="handoff"/>: takes the returned [N, C] gradient's handle (see <see cref="GradientReleaseFunction"/>).
    /// </summary>
    public static Tensor Apply(Tensor logits, Tensor target, GradientHandoff? handoff = null)
    {
        if (logits.dim() != 2 || target.dim() != 1 || target.shape[0] != logits.shape[0])
            throw new ArgumentException($"cross-entropy expects logits [N, C] and labels [N]; got [{string.Join(", ", logits.shape)}] and [{string.Join(", ", target.shape)}].");
        if (target.dtype != ScalarType.Int64)
            throw new ArgumentException($"cross-entropy labels must be int64 (torch.long); got {target.dtype}.");
        return apply(logits, target, handoff!);
    }

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var logits = (Tensor)vars[0];
        var target = (Tensor)vars[1];
        using var scope = NewDisposeScope();
        var valid = target.ne(HeldScalars.Of(IgnoreIndex));                                         // [N]
        var safe = target.masked_fill(valid.logical_not(), HeldScalars.Of(0L)).unsqueeze(1);         // [N, 1]
        var picked = PickedLogProbs(logits, safe).masked_fill(valid.logical_not(), HeldScalars.Of(0.0)); // [N]
        var count = valid.sum(type: ScalarType.Float32);                                             // [] (0 → NaN loss)
        var loss = picked.sum().neg().div(count);                                                    // []
        var kept = empty(0, logits.dtype, logits.device).set_(logits);                               // [N, C], shares the logits' storage; released in backward
        ctx.save_for_backward([kept.MoveToOuterDisposeScope(), target, count.MoveToOuterDisposeScope()]);   // handles valid until the node saves them after forward
        ctx.save_data(DtypeKey, logits.dtype);
        if (vars[2] is GradientHandoff handoff) ctx.save_data(HandoffKey, handoff);
        ctx.set_materialize_grads(false);
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Rows per log-softmax block on the CPU: about <see cref="CpuBlockBytes"/> of float32 (at least one row). A test
    /// seam sets it lower; 0 means the default.
    /// </summary>
    internal static long CpuBlockBytesOverride { get; set; }

    /// <summary>
    /// The float32 size of one CPU log-softmax block (8 MiB). Below glibc's largest mmap threshold (32 MiB), so a block
    /// is served from the heap and reused, instead of a fresh [N, C] mapping whose every page faults in once per step.
    /// </summary>
    internal const long CpuBlockBytes = 8L << 20;

    // log_softmax(x.float())[i, label_i] for every row: logits [N, C], safe labels [N, 1] → [N] float32. On the CPU in
    // blocks of rows (torch's CPU log-softmax is computed row by row, so the values are the same bits as one call over
    // all rows): the [N, C] float32 temporary (206 MB for 1024 × 50272) is never made. On CUDA one call (the caching
    // allocator reuses the block; more calls would only add launches).
    private static Tensor PickedLogProbs(Tensor logits, Tensor safe)
    {
        long n = logits.shape[0], c = logits.shape[1];
        long blockBytes = CpuBlockBytesOverride > 0 ? CpuBlockBytesOverride : CpuBlockBytes;
        long rows = logits.device_type == TorchSharp.DeviceType.CPU ? Math.Max(1, blockBytes / (c * sizeof(float))) : n;
        if (rows >= n)
        {
            using var logProbs = nn.functional.log_softmax(logits.to_type(ScalarType.Float32), 1);  // [N, C], temporary
            return logProbs.gather(1, safe).squeeze(1);                                             // [N]
        }
        var picked = empty(n, ScalarType.Float32, logits.device);                                  // [N]
        for (long r0 = 0; r0 < n; r0 += rows)
        {
            long len = Math.Min(rows, n - r0);
            using var block = NewDisposeScope();
            var logProbs = nn.functional.log_softmax(logits.narrow(0, r0, len).to_type(ScalarType.Float32), 1); // [len, C]
            picked.narrow(0, r0, len).copy_(logProbs.gather(1, safe.narrow(0, r0, len)).squeeze(1));         // [len]
        }
        return picked;
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        var result = new List<Tensor> { null!, null!, null! };
        if (grad_output is null || grad_output.IsInvalid) return result;
        // A second backward through this node (retain_graph): the logits are gone. An exception cannot leave this
        // callback (it would cross native frames and end the process); a gradient of the wrong shape makes autograd's
        // engine refuse it ("invalid gradient at index 0"), which reaches the caller of backward() as an exception.
        if (ctx.get_data(ReleasedKey) is true) return [empty(0), null!, null!];
        using var scope = NewDisposeScope();
        var saved = ctx.get_saved_variables();
        var (logits, target, count) = (saved[0], saved[1], saved[2]);
        var dtype = (ScalarType)ctx.get_data(DtypeKey);
        var valid = target.ne(HeldScalars.Of(IgnoreIndex));                                         // [N]
        var safe = target.masked_fill(valid.logical_not(), HeldScalars.Of(0L)).unsqueeze(1);         // [N, 1]
        // g / n on valid rows, 0 on ignored ones (also when n = 0, where torch's gradient is zero too).
        var scale = grad_output.to_type(ScalarType.Float32).div(count).expand(target.shape[0])
            .masked_fill(valid.logical_not(), HeldScalars.Of(0.0)).unsqueeze(1);                    // [N, 1]
        var grad = nn.functional.softmax(logits.to_type(ScalarType.Float32), 1);                   // [N, C] float32, the one buffer
        grad.mul_(scale).scatter_add_(1, safe, scale.neg());                                       // softmax · s − onehot · s
        result[0] = (dtype == ScalarType.Float32 ? grad : grad.to_type(dtype)).MoveToOuterDisposeScope();
        logits.set_(empty(0, logits.dtype, logits.device));                                        // drop the saved logits' storage (torch: released after backward)
        ctx.save_data(ReleasedKey, true);
        if (ctx.get_data(HandoffKey) is GradientHandoff handoff) handoff.Hold(result[0]);
        return BackwardHandOver.Finish(result, grad_output);   // no owner on CUDA's engine thread: see BackwardHandOver
    }
}
