using Peft.Core;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Peft.Transformers.Models.Llama;

/// <summary>
/// A Llama-family backbone with the LM head (HF <c>LlamaForCausalLM</c>): <c>lm_head</c> is a Linear, or a
/// <see cref="TiedLinear"/> over <c>model.embed_tokens</c> when <c>tie_word_embeddings</c> (then not saved, as HF).
/// </summary>
public abstract class RotaryDecoderForCausalLM : PreTrainedModel
{
    /// <summary>HF <c>model</c>: the backbone.</summary>
    [field: ComponentName(Name = "model")] public RotaryDecoderModel model { get; }
    /// <summary>HF <c>lm_head</c> [vocab, hidden].</summary>
    [field: ComponentName(Name = "lm_head")] public nn.Module<Tensor, Tensor> lm_head { get; }
    private readonly RotaryDecoderConfig _config;

    /// <summary>Builds the head over <paramref name="backbone"/>; the derived constructor calls <c>RegisterComponents()</c>.</summary>
    protected RotaryDecoderForCausalLM(string name, RotaryDecoderConfig config, RotaryDecoderModel backbone, Device? device = null) : base(name, config)
    {
        model = backbone;
        _config = config;
        var emb = backbone.GetInputEmbeddings();
        lm_head = config.TieWordEmbeddings ? new TiedLinear(() => emb.weight!) : nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false, device: device);
    }

    /// <inheritdoc />
    public override string BaseModelPrefix => "model";
    /// <inheritdoc />
    public override TransformerDimensions Dimensions => model.Dimensions;
    /// <inheritdoc />
    public override Embedding GetInputEmbeddings() => model.GetInputEmbeddings();
    /// <inheritdoc />
    public override bool CanGenerate => true;
    /// <inheritdoc />
    internal override string? StaticCacheUnsupported =>
        Enumerable.Range(0, _config.NumHiddenLayers).Select(_config.SlidingWindowOf).FirstOrDefault(w => w is not null) is { } window
            ? $"{ArchitectureName} has sliding-window attention layers (window {window})"
            : null;
    /// <inheritdoc />
    public override Linear? GetOutputEmbeddings() => CausalHeads.OutputEmbeddings(lm_head, ArchitectureName);
    /// <inheritdoc />
    protected internal override IReadOnlyCollection<string> TiedCheckpointKeys => Config.TieWordEmbeddings ? ["lm_head.weight"] : [];
    /// <inheritdoc />
    protected internal override void AfterInit() => model.AfterInit();

    /// <summary>Logits [B, T, vocab]; loss (HF shifted cross-entropy) when labels [B, T] are given; the cache when used.</summary>
    public override ModelOutput forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        return CausalHeads.LmForward(model.forward(input), lm_head, input);
    }
}

/// <summary>A Llama-family backbone with a sequence-classification head <c>score</c> pooled at the last non-pad token (HF <c>LlamaForSequenceClassification</c>).</summary>
public abstract class RotaryDecoderForSequenceClassification : PreTrainedModel
{
    /// <summary>HF <c>model</c>: the backbone.</summary>
    [field: ComponentName(Name = "model")] public RotaryDecoderModel model { get; }
    /// <summary>HF <c>score</c> [num_labels, hidden], no bias.</summary>
    [field: ComponentName(Name = "score")] public nn.Module<Tensor, Tensor> score { get; }

    /// <summary>Builds the head; the derived constructor calls <c>RegisterComponents()</c>.</summary>
    protected RotaryDecoderForSequenceClassification(string name, RotaryDecoderConfig config, RotaryDecoderModel backbone, Device? device = null) : base(name, config)
    {
        model = backbone;
        score = nn.Linear(config.HiddenSize, config.NumLabels, hasBias: false, device: device);
    }

    /// <inheritdoc />
    public override string BaseModelPrefix => "model";
    /// <inheritdoc />
    public override TransformerDimensions Dimensions => model.Dimensions;
    /// <inheritdoc />
    public override Embedding GetInputEmbeddings() => model.GetInputEmbeddings();
    /// <inheritdoc />
    protected internal override void AfterInit() => model.AfterInit();

    /// <summary>Logits [B, num_labels] at each row's last non-pad token; loss by problem_type when labels are given.</summary>
    public override ModelOutput forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        var o = model.forward(input);
        var logits = score.forward(o.LastHiddenState!);                                    // [B, T, C]
        var pooled = CausalHeads.PoolLastNonPad(logits, input.InputIds, Config.PadTokenId, ArchitectureName);
        return CausalHeads.ClsOutput(o, pooled, input.Labels, Config);
    }
}

/// <summary>A Llama-family backbone with a per-token classifier <c>score</c> (HF <c>LlamaForTokenClassification</c>).</summary>
public abstract class RotaryDecoderForTokenClassification : PreTrainedModel
{
    /// <summary>HF <c>model</c>: the backbone.</summary>
    [field: ComponentName(Name = "model")] public RotaryDecoderModel model { get; }
    /// <summary>HF <c>score</c> [num_labels, hidden] with bias.</summary>
    [field: ComponentName(Name = "score")] public nn.Module<Tensor, Tensor> score { get; }
    private readonly Dropout dropout;

    /// <summary>Builds the head; the derived constructor calls <c>RegisterComponents()</c>.</summary>
    protected RotaryDecoderForTokenClassification(string name, RotaryDecoderConfig config, RotaryDecoderModel backbone, Device? device = null) : base(name, config)
    {
        model = backbone;
        dropout = nn.Dropout(0.1);
        score = nn.Linear(config.HiddenSize, config.NumLabels, device: device);
    }

    /// <inheritdoc />
    public override string BaseModelPrefix => "model";
    /// <inheritdoc />
    public override TransformerDimensions Dimensions => model.Dimensions;
    /// <inheritdoc />
    public override Embedding GetInputEmbeddings() => model.GetInputEmbeddings();
    /// <inheritdoc />
    protected internal override void AfterInit() => model.AfterInit();

    /// <summary>Logits [B, T, num_labels]; cross-entropy (−100 ignored) when labels [B, T] are given.</summary>
    public override ModelOutput forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        var o = model.forward(input);
        return CausalHeads.TokenOutput(o, score.forward(dropout.forward(o.LastHiddenState!)), input.Labels);
    }
}

/// <summary>Llama backbone (HF <c>LlamaModel</c>).</summary>
public sealed class LlamaModel : RotaryDecoderModel
{
    /// <summary>Builds the backbone for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public LlamaModel(LlamaConfig config, Device? device = null) : base(nameof(LlamaModel), config, device) => RegisterComponents();
}

/// <summary>Llama causal LM (HF <c>LlamaForCausalLM</c>): RMSNorm, RoPE (default/linear/llama3), GQA, SwiGLU, tied or untied head.</summary>
public sealed class LlamaForCausalLM : RotaryDecoderForCausalLM
{
    /// <summary>Builds the model for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public LlamaForCausalLM(LlamaConfig config, Device? device = null) : base(nameof(LlamaForCausalLM), config, new LlamaModel(config, device), device) => RegisterComponents();
}

/// <summary>Llama sequence classifier (HF <c>LlamaForSequenceClassification</c>).</summary>
public sealed class LlamaForSequenceClassification : RotaryDecoderForSequenceClassification
{
    /// <summary>Builds the model for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public LlamaForSequenceClassification(LlamaConfig config, Device? device = null) : base(nameof(LlamaForSequenceClassification), config, new LlamaModel(config, device), device) => RegisterComponents();
}

/// <summary>Llama token classifier (HF <c>LlamaForTokenClassification</c>).</summary>
public sealed class LlamaForTokenClassification : RotaryDecoderForTokenClassification
{
    /// <summary>Builds the model for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public LlamaForTokenClassification(LlamaConfig config, Device? device = null) : base(nameof(LlamaForTokenClassification), config, new LlamaModel(config, device), device) => RegisterComponents();
}
