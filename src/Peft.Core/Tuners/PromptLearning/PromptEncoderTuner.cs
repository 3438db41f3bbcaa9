using Microsoft.Extensions.Logging;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// What prompt tuning, P-tuning and prefix tuning share (PEFT's prompt-learning branch of <c>PeftModel</c>): one
/// <see cref="BasePromptEncoder"/> per adapter in <c>prompt_encoder</c> (PEFT <c>self.prompt_encoder</c>), the config
/// filled from the model (<see cref="PromptLearningConfig.WithModelDimensions"/>), the encoder output PEFT's
/// <c>get_prompt</c> computes, disabling, and the file (<c>prompt_embeddings</c>: the embedding table in inference mode,
/// else the encoder's output for the virtual tokens, as <c>get_prompt_embedding_to_save</c>).
/// </summary>
/// <typeparam name="TConfig">The method's config.</typeparam>
public abstract class PromptEncoderTuner<TConfig> : PromptLearningTuner where TConfig : PromptLearningConfig
{
    /// <summary>The file key of the saved virtual tokens / prefix (PEFT <c>prompt_embeddings</c>).</summary>
    public const string PromptEmbeddingsKey = "prompt_embeddings";

    private readonly AdapterModuleDict<BasePromptEncoder> prompt_encoder = new();
    private bool _disabled;

    /// <summary>Wraps <paramref name="model"/>, which must implement <see cref="IPreTrainedModel"/> (sizes, word embeddings).</summary>
    protected PromptEncoderTuner(string name, nn.Module model, ILogger? logger) : base(name, model, logger)
    {
        if (model is not IPreTrainedModel)
            throw new NotSupportedException($"{name}: prompt learning needs a transformer model implementing IPreTrainedModel (sizes, word embeddings); got {model.GetType().Name}.");
        if (!named_children().Any(c => c.name == "prompt_encoder")) register_module("prompt_encoder", prompt_encoder);
    }

    /// <inheritdoc />
    public override string Prefix => "prompt_encoder";

    /// <summary>The wrapped model's PEFT-facing view.</summary>
    protected IPreTrainedModel Pretrained => (IPreTrainedModel)Model;

    /// <summary>The active adapter's config, typed.</summary>
    protected TConfig ActiveConfig => (TConfig)ActivePeftConfig;

    /// <summary>The prompt encoder of <paramref name="adapterName"/>.</summary>
    public BasePromptEncoder EncoderOf(string adapterName) => prompt_encoder[adapterName];

    /// <summary>True while <see cref="PeftModel.DisableAdapter"/> is in effect: inputs pass through unchanged (the base model runs).</summary>
    protected bool Disabled => _disabled;

    /// <summary>Creates the method's encoder for a prepared config (sizes filled in; parameters on the model's device).</summary>
    protected abstract BasePromptEncoder CreateEncoder(TConfig config);

    /// <summary>
    /// The number of virtual-token indices the encoder is run on (PEFT <c>prompt_tokens</c>; prefix tuning keeps the
    /// first num_virtual_tokens).
    /// </summary>
    protected virtual int EncoderTokens(TConfig config) => config.TotalVirtualTokens;

    /// <inheritdoc />
    protected sealed override PeftConfig CreatePromptAdapter(string adapterName, PeftConfig config)
    {
        if (config is not TConfig typed)
            throw new ArgumentException($"{GetType().Name}: expected a {typeof(TConfig).Name}, got {config.GetType().Name}.", nameof(config));
        if (typed.TaskType is null)
            throw new NotSupportedException($"{typed.PeftType}: set task_type (CAUSAL_LM or SEQ_CLS); PEFT's plain PeftModel ignores prompt learning in its forward.");
        var prepared = (TConfig)typed.WithModelDimensions(Pretrained.Dimensions);
        prepared.Validate();
        prompt_encoder.Set(adapterName, CreateEncoder(prepared));
        foreach (var (_, p) in prompt_encoder[adapterName].named_parameters()) p.requires_grad = !prepared.InferenceMode;
        return OnEncoderCreated(adapterName, prepared);
    }

    /// <summary>Called after <paramref name="adapterName"/>'s encoder exists; returns the config to store. Default: unchanged.</summary>
    protected virtual PeftConfig OnEncoderCreated(string adapterName, TConfig config) => config;

    /// <summary>
    /// The encoder output for the active adapter, [B, N, W] (PEFT <c>get_prompt</c> before any reshape): in inference mode
    /// the embedding table repeated, else the encoder run on the virtual-token indices (once, then repeated over the
    /// batch, as PEFT does for prompt tuning / P-tuning). In the caller's dispose scope; carries grad while training.
    /// </summary>
    protected Tensor EncoderOutput(long batch)
    {
        var config = ActiveConfig;
        var encoder = prompt_encoder[ActiveAdapter];
        var table = encoder.Embedding.weight!;
        Tensor one;                                                                   // [1, N, W]
        if (config.InferenceMode) one = table.unsqueeze(0);
        else
        {
            var tokens = arange(HeldScalars.Of(EncoderTokens(config)), dtype: ScalarType.Int64, device: table.device).unsqueeze(0); // [1, N]
            one = encoder.forward(tokens);
        }
        return one.repeat(batch, 1, 1);                                               // [B, N, W]
    }

    /// <inheritdoc />
    public override void SetAdapterLayersEnabled(bool enabled)
    {
        base.SetAdapterLayersEnabled(enabled);
        _disabled = !enabled;
    }

    /// <summary>Makes one adapter active (prompt learning runs one adapter at a time, as PEFT).</summary>
    public override void SetAdapter(IReadOnlyList<string> adapterNames, bool trainable = true)
    {
        ArgumentNullException.ThrowIfNull(adapterNames);
        if (adapterNames.Count != 1)
            throw new NotSupportedException($"{GetType().Name}: prompt learning uses exactly one active adapter, got [{string.Join(", ", adapterNames)}].");
        base.SetAdapter(adapterNames, trainable);
        foreach (var name in prompt_encoder.Keys.ToList())
        {
            bool train = trainable && name == adapterNames[0] && !PeftConfigs[name].InferenceMode;
            foreach (var (_, p) in prompt_encoder[name].named_parameters()) p.requires_grad = train;
        }
    }

    /// <inheritdoc />
    public override void DeleteAdapter(string adapterName)
    {
        base.DeleteAdapter(adapterName);
        prompt_encoder.Remove(adapterName);
    }

    /// <summary>The root of model tensors in prompt-learning files: PEFT's prompt-learning <c>PeftModel</c> holds the model itself as <c>base_model</c> (no tuner in between).</summary>
    public const string PromptLearningStateDictRoot = "base_model.";

    /// <summary>
    /// The file holds <c>prompt_embeddings</c>, loaded into the encoder's embedding (see
    /// <see cref="BasePromptEncoder.LoadPromptEmbeddings"/>), and modules_to_save copies keyed
    /// <c>base_model.&lt;path&gt;</c> (e.g. <c>base_model.classifier.weight</c>), as PEFT writes them for prompt learning.
    /// </summary>
    protected override IEnumerable<AdapterTensorSlot> AdapterSlots(string adapterName, PeftConfig config)
    {
        foreach (var s in base.AdapterSlots(adapterName, config))
            yield return s.Key.StartsWith(StateDictRoot, StringComparison.Ordinal) ? s with { Key = PromptLearningStateDictRoot + s.Key[StateDictRoot.Length..] } : s;
        var encoder = prompt_encoder[adapterName];
        yield return new AdapterTensorSlot(PromptEmbeddingsKey, encoder.Embedding.weight!, Save: false, Load: encoder.LoadPromptEmbeddings);
    }

    /// <summary>
    /// The adapter's file tensors: <c>prompt_embeddings</c> is the embedding table in inference mode, else the encoder
    /// output for the virtual tokens ([N, W], detached; PEFT <c>get_prompt_embedding_to_save</c>), plus modules_to_save.
    /// </summary>
    public override Dictionary<string, Tensor> GetAdapterStateDict(string adapterName)
    {
        var result = base.GetAdapterStateDict(adapterName);
        var config = (TConfig)ConfigOf(adapterName);
        var encoder = prompt_encoder[adapterName];
        if (config.InferenceMode) result[PromptEmbeddingsKey] = encoder.Embedding.weight!;
        else
        {
            using var _ = no_grad();
            var tokens = arange(HeldScalars.Of(EncoderTokens(config)), dtype: ScalarType.Int64, device: encoder.Embedding.weight!.device).unsqueeze(0); // [1, N]
            result[PromptEmbeddingsKey] = encoder.forward(tokens)[0].detach().cpu();   // [N, W]
        }
        return result;
    }

    /// <summary>A mask of ones [B, n] in front of <paramref name="mask"/> ([B, T] → [B, n + T]); null stays null.</summary>
    protected static Tensor? ExtendMask(Tensor? mask, int n) =>
        mask is null ? null : cat([ones([mask.shape[0], n], dtype: mask.dtype, device: mask.device), mask], 1);
}
