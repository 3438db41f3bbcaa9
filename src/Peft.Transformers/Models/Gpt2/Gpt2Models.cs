using Peft.Core;
using Peft.Core.Modules;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Models.Gpt2;

internal static class Gpt2Keys
{
    /// <summary>Old GPT-2 checkpoints store the causal mask as buffers "h.N.attn.bias" / "h.N.attn.masked_bias"; HF ignores them.</summary>
    public static readonly System.Text.RegularExpressions.Regex Ignored = new(@"(^|\.)h\.\d+\.attn\.(masked_)?bias$", System.Text.RegularExpressions.RegexOptions.CultureInvariant);
}

/// <summary>GPT-2 attention (HF <c>GPT2Attention</c>): fused <c>c_attn</c> Conv1D ([in, 3·hidden]) and <c>c_proj</c>.</summary>
public sealed class GPT2Attention : nn.Module
{
    /// <summary>HF <c>c_attn</c>: Conv1D [hidden, 3·hidden] → q | k | v.</summary>
    [field: ComponentName(Name = "c_attn")] public nn.Module<Tensor, Tensor> c_attn { get; }
    /// <summary>HF <c>c_proj</c>: Conv1D [hidden, hidden].</summary>
    [field: ComponentName(Name = "c_proj")] public nn.Module<Tensor, Tensor> c_proj { get; }
    private readonly int _heads, _headDim, _layerIdx;
    private readonly double _queryScale, _attnDrop;
    private readonly Dropout resid_dropout;

    /// <summary>Creates the attention of layer <paramref name="layerIdx"/> (parameters on <paramref name="device"/>; meta = no storage).</summary>
    public GPT2Attention(GPT2Config c, int layerIdx, Device? device = null) : base("GPT2Attention")
    {
        _heads = c.NHead; _headDim = c.NEmbd / c.NHead; _layerIdx = layerIdx; _attnDrop = c.AttnPdrop;
        c_attn = new Conv1D(3 * c.NEmbd, c.NEmbd, device: device);
        c_proj = new Conv1D(c.NEmbd, c.NEmbd, device: device);
        resid_dropout = nn.Dropout(c.ResidPdrop);
        // SDPA divides by √D; HF divides by √D only with scale_attn_weights and also by (layer_idx + 1) when asked.
        double scale = (c.ScaleAttnWeights ? 1.0 / Math.Sqrt(_headDim) : 1.0) / (c.ScaleAttnByInverseLayerIdx ? layerIdx + 1 : 1);
        _queryScale = scale * Math.Sqrt(_headDim);
        RegisterComponents();
    }

    /// <summary>x [B, T, hidden] → [B, T, hidden].</summary>
    public Tensor Forward(Tensor x, Tensor? mask, KeyValueCache? cache)
    {
        long b = x.shape[0], t = x.shape[1], hidden = x.shape[2];
        var qkv = c_attn.forward(x).split(hidden, 2);                                 // 3 × [B, T, hidden]
        var q = qkv[0].view(b, t, _heads, _headDim).transpose(1, 2);               // [B, H, T, D]
        var k = qkv[1].view(b, t, _heads, _headDim).transpose(1, 2);
        var v = qkv[2].view(b, t, _heads, _headDim).transpose(1, 2);
        if (_queryScale != 1.0) q = q * HeldScalars.Of(_queryScale);
        if (cache is not null) (k, v) = cache.Update(_layerIdx, k, v);            // [B, H, past + T, D]
        var o = ModelOps.Attend(q, k, v, mask, training ? _attnDrop : 0.0, causal: true);     // [B, T, hidden]
        return resid_dropout.forward(c_proj.forward(o));
    }
}

/// <summary>GPT-2 MLP (HF <c>GPT2MLP</c>): c_fc, activation, c_proj (Conv1D).</summary>
public sealed class GPT2MLP : nn.Module<Tensor, Tensor>
{
    /// <summary>HF <c>c_fc</c>: Conv1D [hidden, inner].</summary>
    [field: ComponentName(Name = "c_fc")] public nn.Module<Tensor, Tensor> c_fc { get; }
    /// <summary>HF <c>c_proj</c>: Conv1D [inner, hidden].</summary>
    [field: ComponentName(Name = "c_proj")] public nn.Module<Tensor, Tensor> c_proj { get; }
    private readonly Dropout dropout;
    private readonly Func<Tensor, Tensor> _act;

    /// <summary>Creates the MLP (parameters on <paramref name="device"/>).</summary>
    public GPT2MLP(GPT2Config c, Device? device = null) : base("GPT2MLP")
    {
        int inner = c.NInner ?? 4 * c.NEmbd;
        c_fc = new Conv1D(inner, c.NEmbd, device: device);
        c_proj = new Conv1D(c.NEmbd, inner, device: device);
        dropout = nn.Dropout(c.ResidPdrop);
        _act = ModelOps.Activation(c.ActivationFunction);
        RegisterComponents();
    }

    /// <summary>x [B, T, hidden] → [B, T, hidden].</summary>
    public override Tensor forward(Tensor x) => dropout.forward(c_proj.forward(_act(c_fc.forward(x))));
}

/// <summary>GPT-2 block (HF <c>GPT2Block</c>): pre-norm attention and MLP.</summary>
public sealed class GPT2Block : nn.Module, ITransformerLayer
{
    /// <summary>HF <c>ln_1</c>.</summary>
    [field: ComponentName(Name = "ln_1")] public nn.Module<Tensor, Tensor> ln_1 { get; }
    /// <summary>HF <c>attn</c>.</summary>
    [field: ComponentName(Name = "attn")] public GPT2Attention attn { get; }
    /// <summary>HF <c>ln_2</c>.</summary>
    [field: ComponentName(Name = "ln_2")] public nn.Module<Tensor, Tensor> ln_2 { get; }
    /// <summary>HF <c>mlp</c>.</summary>
    [field: ComponentName(Name = "mlp")] public GPT2MLP mlp { get; }

    /// <summary>Creates block <paramref name="layerIdx"/> (parameters on <paramref name="device"/>).</summary>
    public GPT2Block(GPT2Config c, int layerIdx, Device? device = null) : base("GPT2Block")
    {
        ln_1 = nn.LayerNorm(c.NEmbd, c.LayerNormEpsilon, device: device);
        attn = new GPT2Attention(c, layerIdx, device);
        ln_2 = nn.LayerNorm(c.NEmbd, c.LayerNormEpsilon, device: device);
        mlp = new GPT2MLP(c, device);
        RegisterComponents();
    }

    /// <summary>h [B, T, hidden] → [B, T, hidden].</summary>
    public Tensor Forward(Tensor h, Tensor? mask, KeyValueCache? cache)
    {
        h = h.add(attn.Forward(ln_1.forward(h), mask, cache), HeldScalars.One);
        return h.add(mlp.forward(ln_2.forward(h)), HeldScalars.One);
    }

    Tensor ITransformerLayer.Forward(Tensor hidden, in LayerInputs inputs) => Forward(hidden, inputs.Mask, inputs.Cache);
}

/// <summary>GPT-2 backbone (HF <c>GPT2Model</c>): wte + wpe, blocks, ln_f.</summary>
public sealed class GPT2Model : PreTrainedModel
{
    /// <summary>HF <c>wte</c> [vocab, hidden].</summary>
    [field: ComponentName(Name = "wte")] public nn.Module<Tensor, Tensor> wte { get; }
    /// <summary>HF <c>wpe</c> [n_positions, hidden].</summary>
    [field: ComponentName(Name = "wpe")] public nn.Module<Tensor, Tensor> wpe { get; }
    /// <summary>HF <c>h</c>: the blocks.</summary>
    [field: ComponentName(Name = "h")] public ModuleList<GPT2Block> h { get; }
    /// <summary>HF <c>ln_f</c>.</summary>
    [field: ComponentName(Name = "ln_f")] public nn.Module<Tensor, Tensor> ln_f { get; }
    private readonly Dropout drop;
    private readonly ModuleRef<Embedding> _wte;
    private readonly GPT2Config _c;

    /// <summary>Builds the backbone for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public GPT2Model(GPT2Config config, Device? device = null) : base(nameof(GPT2Model), config)
    {
        _c = config;
        var e = StoragelessEmbedding.Create(config.VocabSize, config.NEmbd, device: device);
        _wte = new(e);
        wte = e;
        wpe = StoragelessEmbedding.Create(config.NPositions, config.NEmbd, device: device);
        drop = nn.Dropout(config.EmbdPdrop);
        h = new ModuleList<GPT2Block>(Enumerable.Range(0, config.NLayer).Select(i => new GPT2Block(config, i, device)).ToArray());
        ln_f = nn.LayerNorm(config.NEmbd, config.LayerNormEpsilon, device: device);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override string BaseModelPrefix => "transformer";
    /// <inheritdoc />
    public override bool IsBaseModel => true;
    /// <inheritdoc />
    protected internal override System.Text.RegularExpressions.Regex? IgnoredUnexpectedKeys => Gpt2Keys.Ignored;
    /// <inheritdoc />
    public override TransformerDimensions Dimensions => new(_c.NLayer, _c.NHead, _c.NHead, _c.NEmbd, _c.NEmbd / _c.NHead);
    /// <inheritdoc />
    public override Embedding GetInputEmbeddings() => _wte.Value;

    /// <summary>HF GPT-2 init: residual projections (<c>c_proj</c>) get std initializer_range / √(2·n_layer).</summary>
    protected internal override void AfterInit()
    {
        using var _ = no_grad();
        double std = _c.InitializerRange / Math.Sqrt(2.0 * _c.NLayer);
        foreach (var block in h)
        {
            if (block.attn.c_proj is Conv1D a) a.weight.normal_(0, std);
            if (block.mlp.c_proj is Conv1D m) m.weight.normal_(0, std);
        }
    }

    /// <summary>
    /// input_ids [B, T] (or inputs_embeds), attention_mask [B, past + T] → last_hidden_state [B, T, hidden] after ln_f.
    /// Positions: position_ids, else arange(past, past + T) whatever the mask (HF <c>GPT2Model</c>); pass
    /// mask-derived ids for left-padded batches, as HF's generate does.
    /// </summary>
    public override ModelOutput forward(ModelInput input)
    {
        var (b, t) = CausalHeads.BatchShape(input, nameof(GPT2Model));
        using var scope = NewDisposeScope();
        var pass = new BackbonePass(input, b, t, CheckpointsLayers);
        var x = input.InputsEmbeds ?? wte.call(input.InputIds!);                    // [B, T, hidden]
        var device = x.device;
        x = x.add(wpe.forward(pass.PositionIds(device, ModelOps.ArangePositionIds)), HeldScalars.One);
        if (input.TokenTypeIds is not null) x = x.add(wte.call(input.TokenTypeIds.to(device)), HeldScalars.One);
        x = drop.forward(x);
        pass.UseCausalMasks(h.Count, x.dtype, device);
        x = pass.RunLayers(h, x);
        return ModelOps.MoveOut(pass.Output(ln_f.forward(BackbonePass.ToDeviceOf(ln_f, x))));
    }
}

/// <summary>GPT-2 with the LM head tied to <c>wte</c> (HF <c>GPT2LMHeadModel</c>).</summary>
public sealed class GPT2LMHeadModel : PreTrainedModel
{
    /// <summary>HF <c>transformer</c>: the backbone.</summary>
    [field: ComponentName(Name = "transformer")] public GPT2Model transformer { get; }
    /// <summary>HF <c>lm_head</c> [vocab, hidden]: tied to wte (not saved) unless tie_word_embeddings is false.</summary>
    [field: ComponentName(Name = "lm_head")] public nn.Module<Tensor, Tensor> lm_head { get; }

    /// <summary>Builds the model for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public GPT2LMHeadModel(GPT2Config config, Device? device = null) : base(nameof(GPT2LMHeadModel), config)
    {
        transformer = new GPT2Model(config, device);
        var emb = transformer.GetInputEmbeddings();
        lm_head = config.TieWordEmbeddings ? new TiedLinear(() => emb.weight!) : nn.Linear(config.NEmbd, config.VocabSize, hasBias: false, device: device);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override string BaseModelPrefix => "transformer";
    /// <inheritdoc />
    protected internal override System.Text.RegularExpressions.Regex? IgnoredUnexpectedKeys => Gpt2Keys.Ignored;
    /// <inheritdoc />
    public override TransformerDimensions Dimensions => transformer.Dimensions;
    /// <inheritdoc />
    public override Embedding GetInputEmbeddings() => transformer.GetInputEmbeddings();
    /// <inheritdoc />
    protected internal override void AfterInit() => transformer.AfterInit();
    /// <inheritdoc />
    public override bool CanGenerate => true;
    /// <inheritdoc />
    internal override string? StaticCacheUnsupported => null;
    /// <inheritdoc />
    public override Linear? GetOutputEmbeddings() => CausalHeads.OutputEmbeddings(lm_head, ArchitectureName);
    /// <inheritdoc />
    protected internal override IReadOnlyCollection<string> TiedCheckpointKeys => Config.TieWordEmbeddings ? ["lm_head.weight"] : [];

    /// <summary>Logits [B, T, vocab]; loss (HF shifted cross-entropy) when labels are given.</summary>
    public override ModelOutput forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        return CausalHeads.LmForward(transformer.forward(input), lm_head, input);
    }
}

/// <summary>GPT-2 sequence classifier (HF <c>GPT2ForSequenceClassification</c>): <c>score</c> at the last non-pad token.</summary>
public sealed class GPT2ForSequenceClassification : PreTrainedModel
{
    /// <summary>HF <c>transformer</c>: the backbone.</summary>
    [field: ComponentName(Name = "transformer")] public GPT2Model transformer { get; }
    /// <summary>HF <c>score</c> [num_labels, hidden], no bias.</summary>
    [field: ComponentName(Name = "score")] public nn.Module<Tensor, Tensor> score { get; }

    /// <summary>Builds the model for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public GPT2ForSequenceClassification(GPT2Config config, Device? device = null) : base(nameof(GPT2ForSequenceClassification), config)
    {
        transformer = new GPT2Model(config, device);
        score = nn.Linear(config.NEmbd, config.NumLabels, hasBias: false, device: device);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override string BaseModelPrefix => "transformer";
    /// <inheritdoc />
    protected internal override System.Text.RegularExpressions.Regex? IgnoredUnexpectedKeys => Gpt2Keys.Ignored;
    /// <inheritdoc />
    public override TransformerDimensions Dimensions => transformer.Dimensions;
    /// <inheritdoc />
    public override Embedding GetInputEmbeddings() => transformer.GetInputEmbeddings();
    /// <inheritdoc />
    protected internal override void AfterInit() => transformer.AfterInit();

    /// <summary>Logits [B, num_labels]; loss by problem_type when labels are given.</summary>
    public override ModelOutput forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        var o = transformer.forward(input);
        var pooled = CausalHeads.PoolLastNonPad(score.forward(o.LastHiddenState!), input.InputIds, Config.PadTokenId, ArchitectureName);
        return CausalHeads.ClsOutput(o, pooled, input.Labels, Config);
    }
}

/// <summary>GPT-2 token classifier (HF <c>GPT2ForTokenClassification</c>): dropout + <c>classifier</c> per token.</summary>
public sealed class GPT2ForTokenClassification : PreTrainedModel
{
    /// <summary>HF <c>transformer</c>: the backbone.</summary>
    [field: ComponentName(Name = "transformer")] public GPT2Model transformer { get; }
    /// <summary>HF <c>classifier</c> [num_labels, hidden].</summary>
    [field: ComponentName(Name = "classifier")] public nn.Module<Tensor, Tensor> classifier { get; }
    private readonly Dropout dropout;

    /// <summary>Builds the model for <paramref name="config"/> (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public GPT2ForTokenClassification(GPT2Config config, Device? device = null) : base(nameof(GPT2ForTokenClassification), config)
    {
        transformer = new GPT2Model(config, device);
        var p = config.ExtensionData is not null && config.ExtensionData.TryGetValue("classifier_dropout", out var cd) && cd.ValueKind == System.Text.Json.JsonValueKind.Number
            ? cd.GetDouble() : config.ResidPdrop;
        dropout = nn.Dropout(p);
        classifier = nn.Linear(config.NEmbd, config.NumLabels, device: device);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override string BaseModelPrefix => "transformer";
    /// <inheritdoc />
    protected internal override System.Text.RegularExpressions.Regex? IgnoredUnexpectedKeys => Gpt2Keys.Ignored;
    /// <inheritdoc />
    public override TransformerDimensions Dimensions => transformer.Dimensions;
    /// <inheritdoc />
    public override Embedding GetInputEmbeddings() => transformer.GetInputEmbeddings();
    /// <inheritdoc />
    protected internal override void AfterInit() => transformer.AfterInit();

    /// <summary>Logits [B, T, num_labels]; cross-entropy (−100 ignored) when labels [B, T] are given.</summary>
    public override ModelOutput forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        var o = transformer.forward(input);
        return CausalHeads.TokenOutput(o, classifier.forward(dropout.forward(o.LastHiddenState!)), input.Labels);
    }
}
