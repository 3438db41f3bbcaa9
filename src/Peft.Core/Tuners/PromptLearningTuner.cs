using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// A PEFT method that leaves the model's layers alone and changes its inputs instead (PEFT's prompt-learning branch of
/// <c>PeftModel</c>: prompt tuning, P-tuning, prefix tuning). Adding an adapter creates the method's per-adapter
/// modules (<see cref="CreatePromptAdapter"/>) and freezes the whole base model; the method overrides
/// <see cref="BaseTuner.PrepareInput"/> and <see cref="BaseTuner.PrepareInputsForGeneration"/> to prepend virtual tokens
/// or supply prefix key / values, and <see cref="BaseTuner.AdapterSlots"/> for its file layout (e.g. <c>prompt_embeddings</c>).
/// These adapters cannot be merged.
/// </summary>
public abstract class PromptLearningTuner : BaseTuner
{
    /// <inheritdoc />
    public override bool TransformsInputs => true;

    /// <summary>Wraps <paramref name="model"/> (registered as the child <c>model</c>).</summary>
    protected PromptLearningTuner(string name, nn.Module model, ILogger? logger) : base(name, model, logger) { }

    /// <inheritdoc />
    public override bool SupportsMerge => false;

    /// <summary>Creates the modules of <paramref name="adapterName"/> (prompt encoder, ...) and returns the config as used. Its parameters must require grad.</summary>
    protected abstract PeftConfig CreatePromptAdapter(string adapterName, PeftConfig config);

    /// <summary>Freezes every base-model parameter (PEFT <c>_setup_prompt_encoder</c>), then <see cref="CreatePromptAdapter"/>.</summary>
    protected sealed override PeftConfig InjectAdapter(string adapterName, PeftConfig config)
    {
        config.Validate();
        foreach (var (_, p) in Model.named_parameters()) p.requires_grad = false;
        return CreatePromptAdapter(adapterName, config);
    }
}
