using Peft.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Generation;

/// <summary>
/// <c>Generate</c> on a <see cref="PeftModel"/> (HF <c>PeftModelForCausalLM.generate</c>): the active adapters take part
/// in every decoding step, <see cref="PeftModel.DisableAdapter"/> gives the base model's output, and the base model's
/// <c>generation_config.json</c> supplies the defaults, exactly as <see cref="PreTrainedModel.Generate"/> does.
/// </summary>
public static class PeftGenerationExtensions
{
    /// <summary>
    /// Generates continuations of <paramref name="inputIds"/> [B, T] int64 (left-padded when batched) through the
    /// adapted model and returns [B · NumReturnSequences, T + new] int64 owned by the caller (see
    /// <see cref="GenerationLoop.Generate(nn.Module{ModelInput, ModelOutput}, Tensor, Tensor?, GenerationConfig, GenerationConfig?)"/>).
    /// </summary>
    /// <param name="model">A PEFT model over a causal LM.</param>
    /// <param name="inputIds">Prompt ids [B, T] int64.</param>
    /// <param name="attentionMask">1 for tokens, 0 for (left) padding, [B, T]; or null.</param>
    /// <param name="config">Per-call settings over the base model's generation defaults.</param>
    /// <exception cref="InvalidOperationException">The base model is not a causal LM that can generate.</exception>
    public static Tensor Generate(this PeftModel model, Tensor inputIds, Tensor? attentionMask, GenerationConfig config)
    {
        ArgumentNullException.ThrowIfNull(model);
        return GenerationLoop.Generate(model, inputIds, attentionMask, config, GenerationDefaults(model));
    }

    /// <summary>
    /// <see cref="Generate(PeftModel, Tensor, Tensor?, GenerationConfig)"/> that checks <paramref name="cancellationToken"/>
    /// before every step.
    /// </summary>
    public static Tensor Generate(this PeftModel model, Tensor inputIds, Tensor? attentionMask, GenerationConfig config,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        return GenerationLoop.Generate(model, inputIds, attentionMask, config, GenerationDefaults(model), cancellationToken);
    }

    /// <summary>
    /// Streams the new token ids of one prompt ([1, T]) through the adapted model as they are chosen (greedy or sampling),
    /// with the base model's generation defaults (see <see cref="GenerationLoop.Stream"/>).
    /// </summary>
    public static IEnumerable<int> Stream(this PeftModel model, Tensor inputIds, Tensor? attentionMask, GenerationConfig config,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        return GenerationLoop.Stream(model, inputIds, attentionMask, config, GenerationDefaults(model), cancellationToken);
    }

    /// <summary>
    /// Streams decoded text pieces of one prompt ([1, T]) through the adapted model (HF <c>TextStreamer</c>; see
    /// <see cref="GenerationLoop.StreamText"/>), with the base model's generation defaults.
    /// </summary>
    /// <param name="model">A PEFT model over a causal LM.</param>
    /// <param name="inputIds">One prompt, [1, T] int64.</param>
    /// <param name="attentionMask">Its mask [1, T], or null.</param>
    /// <param name="config">Per-call settings (greedy or sampling).</param>
    /// <param name="decode">Decodes new token ids to text (e.g. <c>ids =&gt; tok.Decode(ids, skipSpecialTokens: true)</c>).</param>
    /// <param name="cancellationToken">Checked before every step.</param>
    public static IEnumerable<string> StreamText(this PeftModel model, Tensor inputIds, Tensor? attentionMask, GenerationConfig config,
        Func<IReadOnlyList<int>, string> decode, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        return GenerationLoop.StreamText(model, inputIds, attentionMask, config, decode, GenerationDefaults(model), cancellationToken);
    }

    /// <summary>
    /// The base model's generation defaults (its <c>generation_config.json</c>); null when the base model is not a
    /// <see cref="PreTrainedModel"/> (e.g. a plain module), in which case only the call's settings apply.
    /// </summary>
    /// <exception cref="InvalidOperationException">The base model is a <see cref="PreTrainedModel"/> without an LM head.</exception>
    public static GenerationConfig? GenerationDefaults(this PeftModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.GetBaseModel() is not PreTrainedModel pre) return null;
        if (!pre.CanGenerate)
            throw new InvalidOperationException($"Generate: the base model {pre.ArchitectureName} ({pre.NameOrPath ?? "no path"}) has no language-model head; use a causal LM (AutoModelForCausalLM).");
        return pre.GenerationConfig;
    }
}
