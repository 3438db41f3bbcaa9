using Microsoft.Extensions.Logging;
using Peft.Core.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// Prompt tuning (PEFT <c>PROMPT_TUNING</c>): a <see cref="PromptEmbedding"/> per adapter whose rows are prepended to the
/// input embeddings (<see cref="VirtualTokenTuner{TConfig}"/>). TEXT init uses <see cref="PromptTuningConfig.InitTokenizer"/>.
/// </summary>
public sealed class PromptTuningModel : VirtualTokenTuner<PromptTuningConfig>
{
    // Adapters created with TEXT init but no tokenizer: usable only once saved weights are loaded into them (resuming
    // training from a folder: FromPretrained(isTrainable: true) cannot pass a tokenizer, and the init is overwritten).
    private readonly HashSet<string> _awaitingWeights = new(StringComparer.Ordinal);

    /// <summary>Wraps <paramref name="model"/> (an <see cref="IPreTrainedModel"/>).</summary>
    public PromptTuningModel(nn.Module model, ILogger? logger) : base(nameof(PromptTuningModel), model, logger) { }

    /// <inheritdoc />
    protected override BasePromptEncoder CreateEncoder(PromptTuningConfig config) =>
        new PromptEmbedding(config, Pretrained.GetInputEmbeddings(), config.InferenceMode ? null : InitIds(config));

    /// <inheritdoc />
    protected override PeftConfig OnEncoderCreated(string adapterName, PromptTuningConfig config)
    {
        if (!config.InferenceMode && config.PromptTuningInit == PromptTuningInit.Text && config.InitTokenizer is null)
            _awaitingWeights.Add(adapterName);
        return config;
    }

    /// <inheritdoc />
    public override void LoadAdapterStateDict(IReadOnlyDictionary<string, Tensor> tensors, string adapterName, string source)
    {
        base.LoadAdapterStateDict(tensors, adapterName, source);
        _awaitingWeights.Remove(adapterName);
    }

    /// <inheritdoc />
    public override Dictionary<string, Tensor> GetAdapterStateDict(string adapterName)
    {
        ThrowIfAwaitingWeights(adapterName);
        return base.GetAdapterStateDict(adapterName);
    }

    /// <inheritdoc />
    public override void DeleteAdapter(string adapterName)
    {
        base.DeleteAdapter(adapterName);
        _awaitingWeights.Remove(adapterName);
    }

    /// <inheritdoc />
    protected override ModelInput PrepareInput(ModelInput input)
    {
        if (!Disabled) ThrowIfAwaitingWeights(ActiveAdapter);
        return base.PrepareInput(input);
    }

    private void ThrowIfAwaitingWeights(string adapterName)
    {
        if (!_awaitingWeights.Contains(adapterName)) return;
        var config = (PromptTuningConfig)PeftConfigs[adapterName];
        throw new InvalidOperationException(
            $"PROMPT_TUNING adapter '{adapterName}': prompt_tuning_init \"TEXT\" needs a tokenizer; Peft.NET does not load tokenizer_name_or_path \"{config.TokenizerNameOrPath}\" itself — " +
            "set PromptTuningConfig.InitTokenizer (e.g. text => tokenizer.Encode(text)), or load saved weights into the adapter.");
    }

    /// <summary>The word ids whose embeddings start the prompt (PEFT <c>PromptEmbedding.__init__</c>), or null for a random start.</summary>
    private long[]? InitIds(PromptTuningConfig config)
    {
        int total = config.TotalVirtualTokens;
        switch (config.PromptTuningInit)
        {
            case PromptTuningInit.SampleVocab:
            {
                long vocab = Pretrained.GetInputEmbeddings().weight!.shape[0];
                using var ids = randint(0, vocab, [total], dtype: ScalarType.Int64);
                return ids.data<long>().ToArray();
            }
            case PromptTuningInit.Text:
            {
                if (config.InitTokenizer is not { } tokenizer) return null;   // random until weights are loaded, see _awaitingWeights
                var ids = tokenizer(config.PromptTuningInitText!);
                if (ids.Count == 0) throw new ArgumentException($"PROMPT_TUNING: prompt_tuning_init_text \"{config.PromptTuningInitText}\" tokenizes to no ids.", nameof(config));
                // Cut to the virtual token count, or repeat the ids until it is reached (PEFT).
                return Enumerable.Range(0, total).Select(i => (long)ids[i % ids.Count]).ToArray();
            }
            default:
                return null;
        }
    }
}
