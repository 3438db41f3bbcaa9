using Peft.Core.Torch;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Peft.Transformers.Models;

/// <summary>
/// Activation checkpointing as a TorchSharp custom autograd function (torch.utils.checkpoint): the forward runs the
/// wrapped function without recording a graph and keeps only its inputs; backward re-runs it under enable_grad with
/// the same random state and back-propagates the incoming gradient into the inputs and the given parameters.
/// </summary>
/// <remarks>
/// The trainable parameters the function uses are passed as inputs of the node, so the node is part of the graph
/// even when no tensor input requires grad (frozen embeddings under LoRA, the case for which HF needs
/// <c>enable_input_require_grads()</c> with reentrant checkpointing); the recomputation's backward accumulates their
/// gradients into <c>.grad</c> directly, and the node returns gradients for its tensor inputs only. Tensors the function needs must come through <c>inputs</c> (they are saved with
/// the node and released with the graph), never captured by the delegate. As with torch's reentrant checkpoint, the
/// outer pass must be <c>backward()</c>: <c>torch.autograd.grad</c> over parameters inside a checkpointed function
/// would find them accumulated into <c>.grad</c> instead of returned.
/// </remarks>
internal sealed class CheckpointFunction : SingleTensorFunction<CheckpointFunction>
{
    private const string CallKey = "call";

    /// <summary>The recomputable call: the function, which inputs required grad, and the parameters it trains.</summary>
    private sealed record Call(Func<Tensor?[], Tensor> Fn, bool[] NeedsGrad, Parameter[] Parameters)
    {
        public long? CudaSeed { get; set; }
    }

    /// <inheritdoc />
    public override string Name => nameof(CheckpointFunction);

    /// <summary>
    /// Runs <paramref name="fn"/> on <paramref name="inputs"/> (first one non-null, its device decides the random
    /// state to keep) and returns its output, recomputed in backward. <paramref name="parameters"/>: the trainable
    /// parameters the function uses.
    /// </summary>
    public static Tensor Run(Func<Tensor?[], Tensor> fn, Tensor?[] inputs, IReadOnlyList<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(inputs[0]);
        var call = new Call(fn, inputs.Select(x => x is not null && x.requires_grad).ToArray(), parameters.ToArray());
        var args = new object?[1 + inputs.Length + parameters.Count];
        args[0] = call;
        for (int i = 0; i < inputs.Length; i++) args[1 + i] = inputs[i];
        for (int j = 0; j < parameters.Count; j++) args[1 + inputs.Length + j] = parameters[j];
        return apply(args!);
    }

    /// <inheritdoc />
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var call = (Call)vars[0];
        var inputs = new Tensor?[call.NeedsGrad.Length];
        for (int i = 0; i < inputs.Length; i++) inputs[i] = vars[1 + i] as Tensor;
        var (cpuState, cudaSeed) = RngReplay.Capture(inputs[0]!.device);
        var output = call.Fn(inputs);
        call.CudaSeed = cudaSeed;
        ctx.save_for_backward([.. inputs, cpuState]);
        ctx.save_data(CallKey, call);
        ctx.set_materialize_grads(false);
        return output;
    }

    /// <inheritdoc />
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        var call = (Call)ctx.get_data(CallKey);
        int n = call.NeedsGrad.Length;
        var result = new Tensor?[1 + n + call.Parameters.Length];
        if (grad_output is null || grad_output.IsInvalid) return result.ToList()!;
        using var scope = NewDisposeScope();
        var saved = ctx.get_saved_variables();
        var inputs = new Tensor?[n];
        var wrt = new List<Tensor>(call.Parameters);
        for (int i = 0; i < n; i++)
        {
            if (saved[i] is not { } s) continue;
            inputs[i] = s.detach();
            if (!call.NeedsGrad[i]) continue;
            inputs[i]!.requires_grad_(true);
            wrt.Add(inputs[i]!);
        }
        if (wrt.Count == 0) return result.ToList()!;
        Tensor output;
        using (enable_grad())
        using (RngReplay.Replay(saved[n], call.CudaSeed))
            output = call.Fn(inputs);
        // Parameters: accumulated into .grad by this nested backward (the engine steals a fresh gradient instead of
        // copying it, as torch's reentrant checkpoint does); their slots stay null. Inputs: returned to the engine.
        TorchSharp.torch.autograd.backward([output], [grad_output], inputs: wrt);
        for (int i = 0; i < n; i++)
            if (call.NeedsGrad[i] && inputs[i]!.grad is { IsInvalid: false } g) result[1 + i] = g.MoveToOuterDisposeScope();
        return BackwardHandOver.Finish(result.ToList()!, grad_output);   // no owner on CUDA's engine thread: see BackwardHandOver
    }
}
