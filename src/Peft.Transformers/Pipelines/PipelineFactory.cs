using Peft.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

public abstract partial class Pipeline : IDisposable
{
    private IDisposable? _owned;
    private bool _disposed;

    /// <summary>The task names <see cref="Create(string, string, FromPretrainedOptions?)"/> accepts (aliases included).</summary>
    public static IReadOnlyList<string> SupportedTasks { get; } =
        ["text-generation", "text-classification", "sentiment-analysis", "token-classification", "ner", "question-answering", "fill-mask", "feature-extraction"];

    /// <summary>
    /// Loads the tokenizer and the task's model class from <paramref name="modelPathOrId"/> (a folder, or a hub id found in
    /// the local HF cache) and builds the pipeline (HF <c>pipeline(task, model=...)</c>). The pipeline owns that model:
    /// dispose the pipeline to release it.
    /// </summary>
    /// <exception cref="ArgumentException">Unknown task (the message lists the supported ones).</exception>
    public static Pipeline Create(string task, string modelPathOrId, FromPretrainedOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(modelPathOrId);
        var canonical = Canonical(task);
        var dir = HubCache.ResolveModelDir(modelPathOrId, options);
        var tokenizer = AutoTokenizer.FromPretrained(dir);
        PreTrainedModel model = canonical switch
        {
            "text-generation" => AutoModelForCausalLM.FromPretrained(dir, options),
            "text-classification" => AutoModelForSequenceClassification.FromPretrained(dir, options),
            "token-classification" => AutoModelForTokenClassification.FromPretrained(dir, options),
            "question-answering" => AutoModelForQuestionAnswering.FromPretrained(dir, options),
            "fill-mask" => AutoModelForMaskedLM.FromPretrained(dir, options),
            _ => AutoModel.FromPretrained(dir, options),
        };
        model.eval();
        var pipeline = Create(canonical, model, tokenizer);
        pipeline._owned = model;
        return pipeline;
    }

    /// <summary>
    /// Builds a pipeline over an already-loaded model and tokenizer (the caller keeps ownership of both). Works with any
    /// <c>torch.nn.Module&lt;ModelInput, ModelOutput&gt;</c>, e.g. a <c>PeftModel</c>: pass <paramref name="config"/> (for
    /// id2label / problem_type) and <paramref name="generationConfig"/> when <paramref name="model"/> is not a
    /// <see cref="PreTrainedModel"/> (a PreTrainedModel, or a PeftModel over one, supplies its own).
    /// </summary>
    public static Pipeline Create(string task, nn.Module<ModelInput, ModelOutput> model, PreTrainedTokenizer tokenizer,
        PretrainedConfig? config = null, GenerationConfig? generationConfig = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var pre = model as PreTrainedModel ?? (model as PeftModel)?.GetBaseModel() as PreTrainedModel;
        config ??= pre?.Config;
        generationConfig ??= pre?.GenerationConfig;
        var tok = PipelineTokenizer.From(tokenizer);
        return Canonical(task) switch
        {
            "text-generation" => new TextGenerationPipeline(model, tok, generationConfig),
            "text-classification" => new TextClassificationPipeline(model, tok, config?.Id2Label, config?.ProblemType),
            "token-classification" => new TokenClassificationPipeline(model, tok, config?.Id2Label),
            "question-answering" => new QuestionAnsweringPipeline(model, tok),
            "fill-mask" => new FillMaskPipeline(model, tok),
            _ => new FeatureExtractionPipeline(model, tok),
        };
    }

    /// <summary>A text-generation pipeline loaded from a folder or hub id (owns its model).</summary>
    public static TextGenerationPipeline TextGeneration(string modelPathOrId, FromPretrainedOptions? options = null) =>
        (TextGenerationPipeline)Create("text-generation", modelPathOrId, options);

    /// <summary>A text-classification pipeline loaded from a folder or hub id (owns its model).</summary>
    public static TextClassificationPipeline TextClassification(string modelPathOrId, FromPretrainedOptions? options = null) =>
        (TextClassificationPipeline)Create("text-classification", modelPathOrId, options);

    /// <summary>A token-classification (NER) pipeline loaded from a folder or hub id (owns its model).</summary>
    public static TokenClassificationPipeline TokenClassification(string modelPathOrId, FromPretrainedOptions? options = null) =>
        (TokenClassificationPipeline)Create("token-classification", modelPathOrId, options);

    /// <summary>A question-answering pipeline loaded from a folder or hub id (owns its model).</summary>
    public static QuestionAnsweringPipeline QuestionAnswering(string modelPathOrId, FromPretrainedOptions? options = null) =>
        (QuestionAnsweringPipeline)Create("question-answering", modelPathOrId, options);

    /// <summary>A fill-mask pipeline loaded from a folder or hub id (owns its model).</summary>
    public static FillMaskPipeline FillMask(string modelPathOrId, FromPretrainedOptions? options = null) =>
        (FillMaskPipeline)Create("fill-mask", modelPathOrId, options);

    /// <summary>A feature-extraction pipeline loaded from a folder or hub id (owns its model).</summary>
    public static FeatureExtractionPipeline FeatureExtraction(string modelPathOrId, FromPretrainedOptions? options = null) =>
        (FeatureExtractionPipeline)Create("feature-extraction", modelPathOrId, options);

    private static string Canonical(string task) => task.Trim().ToLowerInvariant() switch
    {
        "text-generation" => "text-generation",
        "text-classification" or "sentiment-analysis" => "text-classification",
        "token-classification" or "ner" => "token-classification",
        "question-answering" => "question-answering",
        "fill-mask" => "fill-mask",
        "feature-extraction" => "feature-extraction",
        _ => throw new ArgumentException($"unknown pipeline task \"{task}\"; supported: {string.Join(", ", SupportedTasks)}", nameof(task)),
    };

    /// <summary>Releases the model when the pipeline loaded it itself.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _owned?.Dispose();
        GC.SuppressFinalize(this);
    }
}
