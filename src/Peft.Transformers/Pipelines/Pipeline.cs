using Peft.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// A model + tokenizer bundle that turns raw inputs into typed results (HF <c>transformers.pipeline</c>). Create one with
/// <c>Pipeline.Create(task, modelPathOrId)</c> (a folder or hub id) or construct a typed pipeline from an already-loaded model
/// (any <c>torch.nn.Module&lt;ModelInput, ModelOutput&gt;</c>, e.g. a <c>PeftModel</c>) and tokenizer.
/// </summary>
/// <remarks>Inputs are processed one at a time (HF's default batch size 1), so padding never changes a result.</remarks>
public abstract partial class Pipeline
{
    /// <summary>Creates a pipeline over an already-loaded model and tokenizer.</summary>
    protected Pipeline(nn.Module<ModelInput, ModelOutput> model, IPipelineTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        Model = model;
        Tokenizer = tokenizer;
    }

    /// <summary>The model (not owned: the caller disposes it).</summary>
    public nn.Module<ModelInput, ModelOutput> Model { get; }

    /// <summary>The tokenizer.</summary>
    public IPipelineTokenizer Tokenizer { get; }

    /// <summary>The task name ("text-generation", "text-classification", ...).</summary>
    public abstract string Task { get; }

    /// <summary>
    /// Runs the pipeline on one input with default options (and <paramref name="generationConfig"/> for text generation).
    /// </summary>
    public IReadOnlyList<PipelineResult> Run(string input, GenerationConfig? generationConfig = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        return RunDefault(input, generationConfig);
    }

    /// <summary>Runs the pipeline on each input of a batch; one result list per input.</summary>
    public IReadOnlyList<IReadOnlyList<PipelineResult>> Run(IEnumerable<string> inputs, GenerationConfig? generationConfig = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        return inputs.Select(x => Run(x, generationConfig)).ToList();
    }

    /// <summary>The task's behaviour for <see cref="Run(string, GenerationConfig?)"/>.</summary>
    protected abstract IReadOnlyList<PipelineResult> RunDefault(string input, GenerationConfig? generationConfig);

    /// <summary>Encodes one input and runs the model without gradients; the output tensors belong to the caller's scope.</summary>
    internal ModelOutput Forward(PipelineEncoding enc)
    {
        if (enc.Ids.Count == 0) throw new ArgumentException("the tokenizer produced no tokens for the input");
        var ids = tensor(enc.Ids.Select(x => (long)x).ToArray(), [1, enc.Ids.Count]);
        var mask = ones_like(ids);
        Tensor? types = enc.TypeIds.Any(t => t != 0) ? tensor(enc.TypeIds.Select(x => (long)x).ToArray(), [1, enc.TypeIds.Count]) : null;
        using var _ = no_grad();
        return Model.forward(new ModelInput { InputIds = ids, AttentionMask = mask, TokenTypeIds = types });
    }

    /// <summary>Numerically stable softmax in double precision.</summary>
    internal static double[] Softmax(ReadOnlySpan<float> logits)
    {
        double max = double.NegativeInfinity;
        foreach (var x in logits) max = Math.Max(max, x);
        var e = new double[logits.Length];
        double sum = 0;
        for (int i = 0; i < e.Length; i++) sum += e[i] = Math.Exp(logits[i] - max);
        for (int i = 0; i < e.Length; i++) e[i] /= sum;
        return e;
    }

    /// <summary>The label of class <paramref name="id"/> from id2label, or HF's default "LABEL_{id}".</summary>
    internal static string LabelOf(IReadOnlyDictionary<int, string>? id2label, int id) =>
        id2label is not null && id2label.TryGetValue(id, out var l) ? l : $"LABEL_{id}";
}
