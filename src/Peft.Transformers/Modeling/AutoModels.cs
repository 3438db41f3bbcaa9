using Microsoft.Extensions.Logging;
using Peft.Transformers.Models.Bert;
using Peft.Transformers.Models.Gpt2;
using Peft.Transformers.Models.Llama;
using Peft.Transformers.Models.Mistral;
using Peft.Transformers.Models.Opt;
using Peft.Transformers.Models.Qwen2;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>The model tasks the Auto loaders know (one per HF <c>AutoModelFor*</c> class).</summary>
public enum ModelTask
{
    /// <summary>Bare backbone (HF <c>AutoModel</c>).</summary>
    Base,
    /// <summary>Causal LM (HF <c>AutoModelForCausalLM</c>).</summary>
    CausalLM,
    /// <summary>Sequence classification (HF <c>AutoModelForSequenceClassification</c>).</summary>
    SequenceClassification,
    /// <summary>Token classification (HF <c>AutoModelForTokenClassification</c>).</summary>
    TokenClassification,
    /// <summary>Extractive question answering (HF <c>AutoModelForQuestionAnswering</c>).</summary>
    QuestionAnswering,
    /// <summary>Masked LM (HF <c>AutoModelForMaskedLM</c>).</summary>
    MaskedLM,
}

/// <summary>Builds and loads models by <c>model_type</c> and task: the machinery behind the <c>AutoModel*</c> classes.</summary>
public static class ModelFactory
{
    // Builders take the device to create parameters on: every architecture builds on the meta device (no storage, no
    // random init) when loading, and the streaming loader puts each checkpoint tensor in place of its parameter.
    private static readonly Dictionary<(string, ModelTask), Func<PretrainedConfig, Device?, PreTrainedModel>> Builders = new()
    {
        [("bert", ModelTask.Base)] = (c, d) => new BertModel((BertConfig)c, device: d),
        [("bert", ModelTask.SequenceClassification)] = (c, d) => new BertForSequenceClassification((BertConfig)c, d),
        [("bert", ModelTask.TokenClassification)] = (c, d) => new BertForTokenClassification((BertConfig)c, d),
        [("bert", ModelTask.QuestionAnswering)] = (c, d) => new BertForQuestionAnswering((BertConfig)c, d),
        [("bert", ModelTask.MaskedLM)] = (c, d) => new BertForMaskedLM((BertConfig)c, d),
        [("gpt2", ModelTask.Base)] = (c, d) => new GPT2Model((GPT2Config)c, d),
        [("gpt2", ModelTask.CausalLM)] = (c, d) => new GPT2LMHeadModel((GPT2Config)c, d),
        [("gpt2", ModelTask.SequenceClassification)] = (c, d) => new GPT2ForSequenceClassification((GPT2Config)c, d),
        [("gpt2", ModelTask.TokenClassification)] = (c, d) => new GPT2ForTokenClassification((GPT2Config)c, d),
        [("llama", ModelTask.TokenClassification)] = (c, d) => new LlamaForTokenClassification((LlamaConfig)c, d),
        [("qwen2", ModelTask.TokenClassification)] = (c, d) => new Qwen2ForTokenClassification((Qwen2Config)c, d),
        [("opt", ModelTask.Base)] = (c, d) => new OPTModel((OPTConfig)c, d),
        [("opt", ModelTask.CausalLM)] = (c, d) => new OPTForCausalLM((OPTConfig)c, d),
        [("opt", ModelTask.SequenceClassification)] = (c, d) => new OPTForSequenceClassification((OPTConfig)c, d),
        [("llama", ModelTask.Base)] = (c, d) => new LlamaModel((LlamaConfig)c, d),
        [("llama", ModelTask.CausalLM)] = (c, d) => new LlamaForCausalLM((LlamaConfig)c, d),
        [("llama", ModelTask.SequenceClassification)] = (c, d) => new LlamaForSequenceClassification((LlamaConfig)c, d),
        [("qwen2", ModelTask.Base)] = (c, d) => new Qwen2Model((Qwen2Config)c, d),
        [("qwen2", ModelTask.CausalLM)] = (c, d) => new Qwen2ForCausalLM((Qwen2Config)c, d),
        [("qwen2", ModelTask.SequenceClassification)] = (c, d) => new Qwen2ForSequenceClassification((Qwen2Config)c, d),
        [("mistral", ModelTask.Base)] = (c, d) => new MistralModel((MistralConfig)c, d),
        [("mistral", ModelTask.CausalLM)] = (c, d) => new MistralForCausalLM((MistralConfig)c, d),
        [("mistral", ModelTask.SequenceClassification)] = (c, d) => new MistralForSequenceClassification((MistralConfig)c, d),
    };

    /// <summary>Every (model_type, task) pair with an architecture.</summary>
    internal static IEnumerable<(string ModelType, ModelTask Task)> Architectures => Builders.Keys;

    /// <summary>A freshly initialised model for <paramref name="config"/> and <paramref name="task"/> (HF <c>from_config</c>).</summary>
    /// <exception cref="NotSupportedException">No architecture for this model_type and task.</exception>
    public static PreTrainedModel FromConfig(PretrainedConfig config, ModelTask task)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (!Builders.TryGetValue((config.ModelType, task), out var build))
            throw new NotSupportedException($"No {task} architecture for model_type '{config.ModelType}'.");
        var model = build(config, null);
        Models.ModelOps.InitWeights(model, config.InitStd);
        model.AfterInit();
        return model;
    }

    /// <summary>
    /// The architecture for <paramref name="config"/> with no storage (every parameter on the meta device). For counting
    /// parameters without materialising them.
    /// </summary>
    internal static PreTrainedModel BuildSkeleton(PretrainedConfig config, ModelTask task) =>
        Builders.TryGetValue((config.ModelType, task), out var build)
            ? build(config, META)
            : throw new NotSupportedException($"No {task} architecture for model_type '{config.ModelType}'.");

    /// <summary>
    /// Loads a model folder (or hub id in the local HF cache): config.json, generation_config.json and the
    /// (possibly sharded) safetensors weights. Missing weights are initialised and reported through
    /// <see cref="FromPretrainedOptions.Logger"/> as HF warns ("Some weights ... newly initialized").
    /// </summary>
    public static PreTrainedModel FromPretrained(string pathOrId, ModelTask task, FromPretrainedOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(pathOrId);
        options ??= new FromPretrainedOptions();
        var dir = HubCache.ResolveModelDir(pathOrId, options);
        var config = AutoConfig.FromPretrained(dir) with { NameOrPath = pathOrId };
        if (options.Id2Label is not null || options.NumLabels is not null)
            config = config.WithNumLabels(options.NumLabels ?? options.Id2Label!.Count, options.Id2Label);
        if (!Builders.TryGetValue((config.ModelType, task), out var build))
            throw new NotSupportedException($"{dir}: no {task} architecture for model_type '{config.ModelType}'.");
        var device = DeviceMap.Resolve(options.DeviceMap, options.Device);
        ScalarType dtype;
        using (var probe = OpenCheckpointOrNull(dir)) dtype = DtypeResolver.Resolve(options.Dtype, config, probe, $"{dir}/config.json");
        var (bnb, prequantized) = QuantizationOf(config, options, dir);
        if (bnb is not null) config = config with { ExtensionData = SavedQuantizationConfig.With(config.ExtensionData, bnb) };
        var model = build(config, META);
        LoadObservers.Constructed.Value?.Invoke(model);
        model.NameOrPath = pathOrId;
        var placement = LoadPlacement.For(config, task, dtype, options);
        var plan = new LoadPlan(dtype, placement?.First ?? device, WeightQuantizer.For(bnb, model, prequantized)) { Placement = placement };
        var (missing, unexpected) = model.LoadWeights(dir, options.IgnoreMismatchedSizes, plan);
        model.MaterializeRest(plan);
        if (missing.Count > 0)
        {
            model.InitializeKeys(missing.ToHashSet(StringComparer.Ordinal));
            options.Logger?.LogWarning(
                "Some weights of {Model} were not initialized from the model checkpoint at {Path} and are newly initialized: [{Keys}]. You should probably TRAIN this model on a down-stream task to be able to use it for predictions and inference.",
                model.ArchitectureName, pathOrId, string.Join(", ", missing));
        }
        if (model.MismatchedKeys.Count > 0)
        {
            options.Logger?.LogWarning(
                "Some weights of {Model} were not initialized from the model checkpoint at {Path} and are newly initialized because the shapes did not match: [{Keys}].",
                model.ArchitectureName, pathOrId, string.Join("; ", model.MismatchedKeys));
        }
        if (unexpected.Count > 0)
        {
            options.Logger?.LogWarning("Some weights of the model checkpoint at {Path} were not used when initializing {Model}: [{Keys}].",
                pathOrId, model.ArchitectureName, string.Join(", ", unexpected));
        }
        plan.Quantizer?.QuantizeRemaining(model);
        Peft.Core.Torch.NativeHeap.Trim();                 // free pages of the load's transient buffers back to the OS
        var genPath = Path.Combine(dir, "generation_config.json");
        if (File.Exists(genPath)) model.GenerationConfig = GenerationConfig.FromFile(genPath);
        model.eval();
        return model;
    }

    /// <summary>
    /// The quantisation to apply: the folder's own <c>quantization_config</c> (a model saved quantised; it wins over
    /// <see cref="FromPretrainedOptions.Quantization"/>, as in HF, which warns) or the options' config.
    /// </summary>
    private static (BitsAndBytesConfig? Config, bool Prequantized) QuantizationOf(PretrainedConfig config, FromPretrainedOptions options, string dir)
    {
        if (config.ExtensionData?.TryGetValue("quantization_config", out var q) != true || q.ValueKind == System.Text.Json.JsonValueKind.Null)
            return (options.Quantization, false);
        var saved = BitsAndBytesConfigJson.FromJson(q, Path.Combine(dir, "config.json"));
        if (options.Quantization is not null && BitsAndBytesConfigJson.ToJson(options.Quantization).GetRawText() != BitsAndBytesConfigJson.ToJson(saved).GetRawText())
            options.Logger?.LogWarning("{Path} is already quantized; the quantization_config of its config.json is used instead of the one passed.", dir);
        return (saved, true);
    }

    private static Peft.Core.Safetensors.SafetensorsCheckpoint? OpenCheckpointOrNull(string dir) =>
        File.Exists(Path.Combine(dir, "model.safetensors")) || File.Exists(Path.Combine(dir, "model.safetensors.index.json"))
            ? Peft.Core.Safetensors.SafetensorsCheckpoint.OpenFolder(dir, "model") : null;
}

/// <summary>Loads the bare backbone of a checkpoint (HF <c>AutoModel</c>): BertModel, GPT2Model, OPTModel, LlamaModel, Qwen2Model.</summary>
public static class AutoModel
{
    /// <summary>Loads from a folder or a cached hub id.</summary>
    public static PreTrainedModel FromPretrained(string pathOrId, FromPretrainedOptions? options = null) => ModelFactory.FromPretrained(pathOrId, ModelTask.Base, options);
    /// <summary>A randomly initialised model for the config.</summary>
    public static PreTrainedModel FromConfig(PretrainedConfig config) => ModelFactory.FromConfig(config, ModelTask.Base);
}

/// <summary>Loads a causal LM (HF <c>AutoModelForCausalLM</c>): GPT2LMHeadModel, OPTForCausalLM, LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM.</summary>
public static class AutoModelForCausalLM
{
    /// <summary>Loads from a folder or a cached hub id.</summary>
    public static PreTrainedModel FromPretrained(string pathOrId, FromPretrainedOptions? options = null) => ModelFactory.FromPretrained(pathOrId, ModelTask.CausalLM, options);
    /// <summary>A randomly initialised model for the config.</summary>
    public static PreTrainedModel FromConfig(PretrainedConfig config) => ModelFactory.FromConfig(config, ModelTask.CausalLM);
}

/// <summary>Loads a sequence classifier (HF <c>AutoModelForSequenceClassification</c>): BERT, GPT-2, OPT, Llama, Qwen2.</summary>
public static class AutoModelForSequenceClassification
{
    /// <summary>Loads from a folder or a cached hub id; <see cref="FromPretrainedOptions.NumLabels"/> sizes a new head.</summary>
    public static PreTrainedModel FromPretrained(string pathOrId, FromPretrainedOptions? options = null) => ModelFactory.FromPretrained(pathOrId, ModelTask.SequenceClassification, options);
    /// <summary>A randomly initialised model for the config.</summary>
    public static PreTrainedModel FromConfig(PretrainedConfig config) => ModelFactory.FromConfig(config, ModelTask.SequenceClassification);
}

/// <summary>Loads a token classifier (HF <c>AutoModelForTokenClassification</c>): BERT, GPT-2, Llama, Qwen2.</summary>
public static class AutoModelForTokenClassification
{
    /// <summary>Loads from a folder or a cached hub id.</summary>
    public static PreTrainedModel FromPretrained(string pathOrId, FromPretrainedOptions? options = null) => ModelFactory.FromPretrained(pathOrId, ModelTask.TokenClassification, options);
    /// <summary>A randomly initialised model for the config.</summary>
    public static PreTrainedModel FromConfig(PretrainedConfig config) => ModelFactory.FromConfig(config, ModelTask.TokenClassification);
}

/// <summary>Loads an extractive QA model (HF <c>AutoModelForQuestionAnswering</c>): BERT.</summary>
public static class AutoModelForQuestionAnswering
{
    /// <summary>Loads from a folder or a cached hub id.</summary>
    public static PreTrainedModel FromPretrained(string pathOrId, FromPretrainedOptions? options = null) => ModelFactory.FromPretrained(pathOrId, ModelTask.QuestionAnswering, options);
    /// <summary>A randomly initialised model for the config.</summary>
    public static PreTrainedModel FromConfig(PretrainedConfig config) => ModelFactory.FromConfig(config, ModelTask.QuestionAnswering);
}

/// <summary>Loads a masked LM (HF <c>AutoModelForMaskedLM</c>): BERT.</summary>
public static class AutoModelForMaskedLM
{
    /// <summary>Loads from a folder or a cached hub id.</summary>
    public static PreTrainedModel FromPretrained(string pathOrId, FromPretrainedOptions? options = null) => ModelFactory.FromPretrained(pathOrId, ModelTask.MaskedLM, options);
    /// <summary>A randomly initialised model for the config.</summary>
    public static PreTrainedModel FromConfig(PretrainedConfig config) => ModelFactory.FromConfig(config, ModelTask.MaskedLM);
}
