using Peft.Core;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Models.Opt;

/// <summary>OPT attention (HF <c>OPTAttention</c>): q/k/v/out projections with biases (enable_bias), KV cache.</summary>
public sealed class OPTAttention : nn.Module
{
    /// <summary>HF <c>k_proj</c>.</summary>
    [field: ComponentName(Name = "k_proj")] public nn.Module<Tensor, Tensor> k_proj { get; }
    /// <summary>HF <c>v_proj</c>.</summary>
    [field: ComponentName(Name = "v_proj")] public nn.Module<Tensor, Tensor> v_proj { get; }
    /// <summary>HF <c>q_proj</c>.</summary>
    [field: ComponentName(Name = "q_proj")] public nn.Module<Tensor, Tensor> q_proj { get; }
    /// <summary>HF <c>out_proj</c>.</summary>
    [field: ComponentName(Name = "out_proj")] public nn.Module<Tensor, Tensor> out_proj { get; }
    private readonly int _heads, _headDim, _layerIdx;
    private readonly double _dropout;

    /// <summary>Creates the attention of layer <paramref name="layerIdx"/>.</summary>
    public OPTAttention(OPTConfig c, int layerIdx, Device? device = null) : base("OPTAttention")
    {
        _heads = c.NumAttentionHeads; _headDim = c.HiddenSize / c.NumAttentionHeads; _layerIdx = layerIdx; _dropout = c.AttentionDropout;
        k_proj = nn.Linear(c.HiddenSize, c.HiddenSize, hasBias: c.EnableBias, device: device);
        v_proj = nn.Linear(c.HiddenSize, c.HiddenSize, hasBias: c.EnableBias, device: device);
        q_proj = nn.Linear(c.HiddenSize, c.HiddenSize, hasBias: c.EnableBias, device: device);
        out_proj = nn.Linear(c.HiddenSize, c.HiddenSize, hasBias: c.EnableBias, device: device);
        RegisterComponents();
    }

    /// <summary>x [B, T, hidden] → [B, T, hidden].</summary>
    public Tensor Forward(Tensor x, Tensor? mask, KeyValueCache? cache) => Forward(x, mask, cache, null);

    /// <summary><see cref="Forward(Tensor, Tensor?, KeyValueCache?)"/> with x's (B, T) when the caller knows them.</summary>
    internal Tensor Forward(Tensor x, Tensor? mask, KeyValueCache? cache, (long B, long T)? shape)
    {
        var heads = HeadLayout.Of(x, shape, _heads, _heads, _headDim, _dropout > 0 && training ? _dropout : 0.0);
        var q = heads.Queries(q_proj.forward(x));                                // [B, H, T, D] (decode: [B, H, 1, D])
        var k = heads.KeysOrValues(k_proj.forward(x));                           // [B, H, T, D]
        var v = heads.KeysOrValues(v_proj.forward(x));
        if (cache is not null) (k, v) = heads.Append(cache, _layerIdx, k, v);          // [B, H, past + T, D]
        var o = heads.Attend(q, k, v, mask, causal: true);                       // [B, T, hidden]
        return out_proj.forward(o);
    }
}

/// <summary>OPT decoder layer (HF <c>OPTDecoderLayer</c>): pre- or post-norm by <c>do_layer_norm_before</c>.</summary>
public sealed class OPTDecoderLayer : nn.Module, ITransformerLayer
{
    /// <summary>HF <c>self_attn</c>.</summary>
    [field: ComponentName(Name = "self_attn")] public OPTAttention self_attn { get; }
    /// <summary>HF <c>self_attn_layer_norm</c>.</summary>
    [field: ComponentName(Name = "self_attn_layer_norm")] public nn.Module<Tensor, Tensor> self_attn_layer_norm { get; }
    /// <summary>HF <c>fc1</c>.</summary>
    [field: ComponentName(Name = "fc1")] public nn.Module<Tensor, Tensor> fc1 { get; }
    /// <summary>HF <c>fc2</c>.</summary>
    [field: ComponentName(Name = "fc2")] public nn.Module<Tensor, Tensor> fc2 { get; }
    /// <summary>HF <c>final_layer_norm</c>.</summary>
    [field: ComponentName(Name = "final_layer_norm")] public nn.Module<Tensor, Tensor> final_layer_norm { get; }
    private readonly Dropout dropout;
    private readonly bool _normBefore;
    private readonly Func<Tensor, Tensor> _act;

    /// <summary>Creates layer <paramref name="layerIdx"/>.</summary>
    public OPTDecoderLayer(OPTConfig c, int layerIdx, Device? device = null) : base("OPTDecoderLayer")
    {
        self_attn = new OPTAttention(c, layerIdx, device);
        self_attn_layer_norm = nn.LayerNorm(c.HiddenSize, elementwise_affine: c.LayerNormElementwiseAffine, device: device);
        fc1 = nn.Linear(c.HiddenSize, c.FfnDim, hasBias: c.EnableBias, device: device);
        fc2 = nn.Linear(c.FfnDim, c.HiddenSize, hasBias: c.EnableBias, device: device);
        final_layer_norm = nn.LayerNorm(c.HiddenSize, elementwise_affine: c.LayerNormElementwiseAffine, device: device);
        dropout = nn.Dropout(c.Dropout);
        _normBefore = c.DoLayerNormBefore;
        _act = ModelOps.Activation(c.ActivationFunction);
        RegisterComponents();
    }

    /// <summary>h [B, T, hidden] → [B, T, hidden].</summary>
    public Tensor Forward(Tensor h, Tensor? mask, KeyValueCache? cache) => Forward(h, mask, cache, null);

    private Tensor Forward(Tensor h, Tensor? mask, KeyValueCache? cache, (long B, long T)? shape)
    {
        var residual = h;
        if (_normBefore) h = self_attn_layer_norm.forward(h);
        h = residual.add(Dropout(self_attn.Forward(h, mask, cache, shape)), HeldScalars.One);
        if (!_normBefore) h = self_attn_layer_norm.forward(h);

        residual = h;
        if (_normBefore) h = final_layer_norm.forward(h);
        h = residual.add(Dropout(fc2.forward(_act(fc1.forward(h)))), HeldScalars.One);
        if (!_normBefore) h = final_layer_norm.forward(h);
        return h;
    }

    // HF's dropout: identity in eval or with p = 0 (no native call then, not even TorchSharp's eval-mode dropout).
    private Tensor Dropout(Tensor x) => dropout.p > 0 && training ? dropout.forward(x) : x;

    Tensor ITransformerLayer.Forward(Tensor hidden, in LayerInputs inputs) => Forward(hidden, inputs.Mask, inputs.Cache, inputs.Shape);
}

/// <summary>OPT decoder stack (HF <c>OPTDecoder</c>): embeddings, learned positions (offset 2), layers, final norm, projections.</summary>
public sealed class OPTDecoder : nn.Module
{
    /// <summary>OPT's learned positions are looked up at position + 2 (HF <c>OPTLearnedPositionalEmbedding.offset</c>).</summary>
    public const int PositionOffset = 2;
    private static readonly TorchSharp.Scalar OffsetScalar = PositionOffset.ToScalar();   // process-lifetime (see ConstScalars)
    /// <summary>HF <c>embed_tokens</c> [vocab, word_embed_proj_dim].</summary>
    [field: ComponentName(Name = "embed_tokens")] public nn.Module<Tensor, Tensor> embed_tokens { get; }
    /// <summary>HF <c>embed_positions</c> [max_position_embeddings + 2, hidden].</summary>
    [field: ComponentName(Name = "embed_positions")] public nn.Module<Tensor, Tensor> embed_positions { get; }
    /// <summary>HF <c>project_in</c> (only when word_embed_proj_dim ≠ hidden_size).</summary>
    [field: ComponentName(Name = "project_in")] public nn.Module<Tensor, Tensor>? project_in { get; }
    /// <summary>HF <c>project_out</c> (only when word_embed_proj_dim ≠ hidden_size).</summary>
    [field: ComponentName(Name = "project_out")] public nn.Module<Tensor, Tensor>? project_out { get; }
    /// <summary>HF <c>final_layer_norm</c> (pre-norm models only).</summary>
    [field: ComponentName(Name = "final_layer_norm")] public nn.Module<Tensor, Tensor>? final_layer_norm { get; }
    /// <summary>HF <c>layers</c>.</summary>
    [field: ComponentName(Name = "layers")] public ModuleList<OPTDecoderLayer> layers { get; }
    private readonly Dropout dropout;
    internal readonly ModuleRef<Embedding> Embedding;

    /// <summary>Creates the decoder.</summary>
    public OPTDecoder(OPTConfig c, Device? device = null) : base("OPTDecoder")
    {
        var e = StoragelessEmbedding.Create(c.VocabSize, c.EmbedDim, paddingIdx: c.PadTokenId, device: device);
        Embedding = new(e);
        embed_tokens = e;
        embed_positions = StoragelessEmbedding.Create(c.MaxPositionEmbeddings + PositionOffset, c.HiddenSize, device: device);
        if (c.EmbedDim != c.HiddenSize)
        {
            project_out = nn.Linear(c.HiddenSize, c.EmbedDim, hasBias: false, device: device);
            project_in = nn.Linear(c.EmbedDim, c.HiddenSize, hasBias: false, device: device);
        }
        if (c.DoLayerNormBefore && !c.RemoveFinalLayerNorm)
            final_layer_norm = nn.LayerNorm(c.HiddenSize, elementwise_affine: c.LayerNormElementwiseAffine, device: device);
        layers = new ModuleList<OPTDecoderLayer>(Enumerable.Range(0, c.NumHiddenLayers).Select(i => new OPTDecoderLayer(c, i, device)).ToArray());
        dropout = nn.Dropout(c.Dropout);
        RegisterComponents();
    }

    /// <summary>Runs the stack; see <see cref="OPTModel.forward"/>.</summary>
    internal ModelOutput Forward(ModelInput input, long b, long t, bool checkpointing)
    {
        var pass = new BackbonePass(input, b, t, checkpointing);
        var x = input.InputsEmbeds ?? embed_tokens.call(input.InputIds!);          // [B, T, word_embed_proj_dim]
        if (project_in is not null) x = project_in.forward(x);                       // [B, T, hidden]
        var device = x.device;
        // HF: cumsum(mask) · mask − 1 over the new positions (padding → −1, i.e. row 1 after the offset)
        var positions = pass.PositionIds(device, ModelOps.MaskDerivedPositionIds);
        x = x.add(embed_positions.forward(positions.add(OffsetScalar, HeldScalars.One)), HeldScalars.One);
        if (dropout.p > 0 && training) x = dropout.forward(x);
        pass.UseCausalMasks(layers.Count, x.dtype, device);
        x = pass.RunLayers(layers, x);
        if (final_layer_norm is not null) x = final_layer_norm.forward(BackbonePass.ToDeviceOf(final_layer_norm, x));
        if (project_out is not null) x = project_out.forward(BackbonePass.ToDeviceOf(project_out, x));
        return pass.Output(x);
    }
}

/// <summary>OPT backbone (HF <c>OPTModel</c>): keys "decoder.*".</summary>
public sealed class OPTModel : PreTrainedModel
{
    /// <summary>HF <c>decoder</c>.</summary>
    [field: ComponentName(Name = "decoder")] public OPTDecoder decoder { get; }
    private readonly OPTConfig _c;

    /// <summary>Builds the backbone for <paramref name="config"/> (random weights).</summary>
    public OPTModel(OPTConfig config, Device? device = null) : base(nameof(OPTModel), config)
    {
        _c = config;
        decoder = new OPTDecoder(config, device);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override string BaseModelPrefix => "model";
    /// <inheritdoc />
    public override bool IsBaseModel => true;
    /// <inheritdoc />
    public override TransformerDimensions Dimensions =>
        new(_c.NumHiddenLayers, _c.NumAttentionHeads, _c.NumAttentionHeads, _c.HiddenSize, _c.HiddenSize / _c.NumAttentionHeads);
    /// <inheritdoc />
    public override Embedding GetInputEmbeddings() => decoder.Embedding.Value;
    /// <inheritdoc />
    protected internal override void AfterInit() => ModelOps.ZeroPaddingRow(decoder.Embedding.Value, _c.PadTokenId);

    /// <summary>
    /// input_ids [B, T] (or inputs_embeds), attention_mask [B, past + T] → last_hidden_state [B, T, word_embed_proj_dim]
    /// (after the final norm and project_out). Positions follow HF OPT: cumsum(mask) · mask − 1 + offset 2.
    /// </summary>
    public override ModelOutput forward(ModelInput input)
    {
        var (b, t) = CausalHeads.BatchShape(input, nameof(OPTModel));
        using var scope = NewDisposeScope();
        var o = decoder.Forward(input, b, t, CheckpointsLayers);
        return ModelOps.MoveOut(o);
    }
}

/// <summary>OPT causal LM (HF <c>OPTForCausalLM</c>): lm_head tied to embed_tokens unless tie_word_embeddings is false.</summary>
public sealed class OPTForCausalLM : PreTrainedModel
{
    /// <summary>HF <c>model</c>: the backbone.</summary>
    [field: ComponentName(Name = "model")] public OPTModel model { get; }
    /// <summary>HF <c>lm_head</c> [vocab, word_embed_proj_dim].</summary>
    [field: ComponentName(Name = "lm_head")] public nn.Module<Tensor, Tensor> lm_head { get; }

    /// <summary>Builds the model for <paramref name="config"/> (random weights).</summary>
    public OPTForCausalLM(OPTConfig config, Device? device = null) : base(nameof(OPTForCausalLM), config)
    {
        model = new OPTModel(config, device);
        var emb = model.GetInputEmbeddings();
        lm_head = config.TieWordEmbeddings ? new TiedLinear(() => emb.weight!) : nn.Linear(config.EmbedDim, config.VocabSize, hasBias: false, device: device);
        RegisterComponents();
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
    internal override string? StaticCacheUnsupported => null;
    /// <inheritdoc />
    public override Linear? GetOutputEmbeddings() => CausalHeads.OutputEmbeddings(lm_head, ArchitectureName);
    /// <inheritdoc />
    protected internal override IReadOnlyCollection<string> TiedCheckpointKeys => Config.TieWordEmbeddings ? ["lm_head.weight"] : [];
    /// <inheritdoc />
    protected internal override void AfterInit() => model.AfterInit();

    /// <summary>Logits [B, T, vocab]; loss (HF shifted cross-entropy) when labels are given.</summary>
    public override ModelOutput forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        return CausalHeads.LmForward(model.forward(input), lm_head, input);
    }
}

/// <summary>OPT sequence classifier (HF <c>OPTForSequenceClassification</c>): <c>score</c> at the last non-pad token.</summary>
public sealed class OPTForSequenceClassification : PreTrainedModel
{
    /// <summary>HF <c>model</c>: the backbone.</summary>
    [field: ComponentName(Name = "model")] public OPTModel model { get; }
    /// <summary>HF <c>score</c> [num_labels, word_embed_proj_dim], no bias.</summary>
    [field: ComponentName(Name = "score")] public nn.Module<Tensor, Tensor> score { get; }

    /// <summary>Builds the model for <paramref name="config"/> (random weights).</summary>
    public OPTForSequenceClassification(OPTConfig config, Device? device = null) : base(nameof(OPTForSequenceClassification), config)
    {
        model = new OPTModel(config, device);
        score = nn.Linear(config.EmbedDim, config.NumLabels, hasBias: false, device: device);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override string BaseModelPrefix => "model";
    /// <inheritdoc />
    public override TransformerDimensions Dimensions => model.Dimensions;
    /// <inheritdoc />
    public override Embedding GetInputEmbeddings() => model.GetInputEmbeddings();
    /// <inheritdoc />
    protected internal override void AfterInit() => model.AfterInit();

    /// <summary>Logits [B, num_labels]; loss by problem_type when labels are given.</summary>
    public override ModelOutput forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        var o = model.forward(input);
        var pooled = CausalHeads.PoolLastNonPad(score.forward(o.LastHiddenState!), input.InputIds, Config.PadTokenId, ArchitectureName);
        return CausalHeads.ClsOutput(o, pooled, input.Labels, Config);
    }
}
