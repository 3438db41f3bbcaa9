using Peft.Core;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using Peft.Core.Torch;
using Peft.Core.Torch.Cuda;

namespace Peft.Transformers.Models.Llama;

/// <summary>
/// Self-attention of the Llama family (HF <c>LlamaAttention</c> / <c>Qwen2Attention</c>): q/k/v/o projections,
/// RoPE on q and k, grouped-query attention, KV cache. Projections are replaceable <c>Module&lt;Tensor, Tensor&gt;</c>
/// fields named as HF's state-dict keys.
/// </summary>
public sealed class RotaryAttention : nn.Module
{
    /// <summary>HF <c>q_proj</c>: [H·D, hidden].</summary>
    [field: ComponentName(Name = "q_proj")] public nn.Module<Tensor, Tensor> q_proj { get; }
    /// <summary>HF <c>k_proj</c>: [Hkv·D, hidden].</summary>
    [field: ComponentName(Name = "k_proj")] public nn.Module<Tensor, Tensor> k_proj { get; }
    /// <summary>HF <c>v_proj</c>: [Hkv·D, hidden].</summary>
    [field: ComponentName(Name = "v_proj")] public nn.Module<Tensor, Tensor> v_proj { get; }
    /// <summary>HF <c>o_proj</c>: [hidden, H·D].</summary>
    [field: ComponentName(Name = "o_proj")] public nn.Module<Tensor, Tensor> o_proj { get; }
    private readonly int _heads, _kvHeads, _headDim, _rotaryDim, _layerIdx;
    private readonly double _dropout;

    /// <summary>Creates the attention of layer <paramref name="layerIdx"/> (parameters on <paramref name="device"/>; meta = no storage, filled by the loader).</summary>
    public RotaryAttention(RotaryDecoderConfig c, int layerIdx, Device? device = null) : base("RotaryAttention")
    {
        _heads = c.NumAttentionHeads; _kvHeads = c.KeyValueHeads; _headDim = c.HeadDim; _layerIdx = layerIdx;
        _rotaryDim = RotaryEmbedding.RotaryDim(c);
        _dropout = c.AttentionDropout;
        q_proj = nn.Linear(c.HiddenSize, _heads * _headDim, hasBias: c.QkvBias, device: device);
        k_proj = nn.Linear(c.HiddenSize, _kvHeads * _headDim, hasBias: c.QkvBias, device: device);
        v_proj = nn.Linear(c.HiddenSize, _kvHeads * _headDim, hasBias: c.QkvBias, device: device);
        o_proj = nn.Linear(_heads * _headDim, c.HiddenSize, hasBias: c.OutputBias, device: device);
        RegisterComponents();
    }

    /// <summary>
    /// x [B, T, hidden] → [B, T, hidden]; appends this step's k/v to <paramref name="cache"/> when given.
    /// <paramref name="cos"/> / <paramref name="sin"/>: the forward's rotary tables [B, 1, T, D_rot] — cos, and sin with
    /// its first half negated (what the backbone computes once per forward for every layer).
    /// </summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, KeyValueCache? cache) => Forward(x, cos, sin, mask, cache, null);

    /// <summary><see cref="Forward(Tensor, Tensor, Tensor, Tensor?, KeyValueCache?)"/> with x's (B, T) when the caller knows them.</summary>
    internal Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, KeyValueCache? cache, (long B, long T)? shape)
    {
        var heads = HeadLayout.Of(x, shape, _heads, _kvHeads, _headDim, _dropout > 0 && training ? _dropout : 0.0);
        var q = heads.Queries(q_proj.forward(x));                                  // [B, H, T, D] (decode: [B, Hkv, H/Hkv, D])
        var k = heads.KeysOrValues(k_proj.forward(x));                             // [B, Hkv, T, D]
        var v = heads.KeysOrValues(v_proj.forward(x));                             // [B, Hkv, T, D]
        (q, k) = RotaryEmbedding.ApplyPair(q, k, cos, sin, _rotaryDim, _headDim);     // fused on CUDA: one kernel for both
        if (cache is not null) (k, v) = heads.Append(cache, _layerIdx, k, v);             // [B, Hkv, past + T, D]
        var o = heads.Attend(q, k, v, mask, causal: true);                         // [B, T, H·D]
        return o_proj.forward(o);
    }
}

/// <summary>Gated MLP: down(act(gate(x)) · up(x)) (HF <c>LlamaMLP</c>).</summary>
public sealed class GatedMlp : nn.Module<Tensor, Tensor>
{
    /// <summary>HF <c>gate_proj</c>.</summary>
    [field: ComponentName(Name = "gate_proj")] public nn.Module<Tensor, Tensor> gate_proj { get; }
    /// <summary>HF <c>up_proj</c>.</summary>
    [field: ComponentName(Name = "up_proj")] public nn.Module<Tensor, Tensor> up_proj { get; }
    /// <summary>HF <c>down_proj</c>.</summary>
    [field: ComponentName(Name = "down_proj")] public nn.Module<Tensor, Tensor> down_proj { get; }
    private readonly Func<Tensor, Tensor> _act;
    private readonly bool _silu;

    /// <summary>Creates the MLP (parameters on <paramref name="device"/>).</summary>
    public GatedMlp(RotaryDecoderConfig c, Device? device = null) : base("GatedMlp")
    {
        gate_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: c.MlpBiasValue, device: device);
        up_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: c.MlpBiasValue, device: device);
        down_proj = nn.Linear(c.IntermediateSize, c.HiddenSize, hasBias: c.MlpBiasValue, device: device);
        _act = ModelOps.Activation(c.HiddenAct);
        _silu = c.HiddenAct is "silu" or "swish";
        RegisterComponents();
    }

    /// <summary>
    /// x [B, T, hidden] → [B, T, hidden]. With silu on CUDA, <c>act(gate) * up</c> runs as one fused kernel
    /// (<see cref="SwiGluFunction"/>) when <see cref="FusedKernels"/> are available.
    /// </summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var gate = gate_proj.forward(x);
        var up = up_proj.forward(x);
        var act = _silu && FusedKernels.EnabledFor("swiglu") && FusedKernels.Applies(gate, up) ? SwiGluFunction.Apply(gate, up) : _act(gate) * up;
        return down_proj.forward(act).MoveToOuterDisposeScope();
    }
}

/// <summary>Pre-norm decoder layer (HF <c>LlamaDecoderLayer</c>).</summary>
public sealed class RotaryDecoderLayer : nn.Module, ITransformerLayer
{
    /// <summary>HF <c>self_attn</c>.</summary>
    [field: ComponentName(Name = "self_attn")] public RotaryAttention self_attn { get; }
    /// <summary>HF <c>mlp</c>.</summary>
    [field: ComponentName(Name = "mlp")] public GatedMlp mlp { get; }
    /// <summary>HF <c>input_layernorm</c>.</summary>
    [field: ComponentName(Name = "input_layernorm")] public nn.Module<Tensor, Tensor> input_layernorm { get; }
    /// <summary>HF <c>post_attention_layernorm</c>.</summary>
    [field: ComponentName(Name = "post_attention_layernorm")] public nn.Module<Tensor, Tensor> post_attention_layernorm { get; }

    /// <summary>Creates layer <paramref name="layerIdx"/> (parameters on <paramref name="device"/>).</summary>
    public RotaryDecoderLayer(RotaryDecoderConfig c, int layerIdx, Device? device = null) : base("RotaryDecoderLayer")
    {
        self_attn = new RotaryAttention(c, layerIdx, device);
        mlp = new GatedMlp(c, device);
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device);
        RegisterComponents();
    }

    /// <summary>h [B, T, hidden] → [B, T, hidden]; <paramref name="cos"/> / <paramref name="sin"/> as in <see cref="RotaryAttention.Forward(Tensor, Tensor, Tensor, Tensor?, KeyValueCache?)"/>.</summary>
    public Tensor Forward(Tensor h, Tensor cos, Tensor sin, Tensor? mask, KeyValueCache? cache) => Forward(h, cos, sin, mask, cache, null);

    private Tensor Forward(Tensor h, Tensor cos, Tensor sin, Tensor? mask, KeyValueCache? cache, (long B, long T)? shape)
    {
        h = h.add(self_attn.Forward(input_layernorm.forward(h), cos, sin, mask, cache, shape), HeldScalars.One);
        return h.add(mlp.forward(post_attention_layernorm.forward(h)), HeldScalars.One);
    }

    Tensor ITransformerLayer.Forward(Tensor hidden, in LayerInputs inputs) =>
        Forward(hidden, inputs.Cos ?? throw new ArgumentException("RotaryDecoderLayer needs the rotary cos/sin."), inputs.Sin!, inputs.Mask, inputs.Cache, inputs.Shape);
}

/// <summary>
/// The backbone of the Llama family (HF <c>LlamaModel</c> / <c>Qwen2Model</c>): token embeddings, decoder layers,
/// final RMSNorm. Returns <see cref="ModelOutput.LastHiddenState"/> (after the norm) and the cache.
/// </summary>
public abstract class RotaryDecoderModel : PreTrainedModel
{
    /// <summary>HF <c>embed_tokens</c> [vocab, hidden].</summary>
    [field: ComponentName(Name = "embed_tokens")] public nn.Module<Tensor, Tensor> embed_tokens { get; }
    /// <summary>HF <c>layers</c>.</summary>
    [field: ComponentName(Name = "layers")] public ModuleList<RotaryDecoderLayer> layers { get; }
    /// <summary>HF <c>norm</c>.</summary>
    [field: ComponentName(Name = "norm")] public nn.Module<Tensor, Tensor> norm { get; }
    private readonly ModuleRef<Embedding> _embedding;
    private readonly RotaryDecoderConfig _c;

    /// <summary>Builds the backbone (parameters on <paramref name="device"/>); the derived constructor calls <c>RegisterComponents()</c>.</summary>
    protected RotaryDecoderModel(string name, RotaryDecoderConfig config, Device? device = null) : base(name, config)
    {
        _c = config;
        var emb = StoragelessEmbedding.Create(config.VocabSize, config.HiddenSize, paddingIdx: config.PadTokenId, device: device);
        _embedding = new(emb);
        embed_tokens = emb;
        layers = new ModuleList<RotaryDecoderLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(i => new RotaryDecoderLayer(config, i, device)).ToArray());
        norm = new RmsNorm(config.HiddenSize, config.RmsNormEps, device);
    }

    /// <inheritdoc />
    public override string BaseModelPrefix => "model";
    /// <inheritdoc />
    public override bool IsBaseModel => true;
    /// <inheritdoc />
    public override TransformerDimensions Dimensions => new(_c.NumHiddenLayers, _c.NumAttentionHeads, _c.KeyValueHeads, _c.HiddenSize, _c.HeadDim);
    /// <inheritdoc />
    public override Embedding GetInputEmbeddings() => _embedding.Value;

    /// <inheritdoc />
    protected internal override void AfterInit() => ModelOps.ZeroPaddingRow(_embedding.Value, _c.PadTokenId);

    // The rotary inverse frequencies depend on the config only: computed once per device (not per forward / decoded
    // token), owned by the model and freed with it.
    private Tensor? _invFreq;

    private Tensor InvFreqOn(Device device)
    {
        if (_invFreq is { } cached && ModelOps.SameDevice(cached.device, device)) return cached;
        _invFreq?.Dispose();
        using (NewDisposeScope()) _invFreq = RotaryEmbedding.InvFreq(_c, device).DetachFromDisposeScope();
        return _invFreq;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _invFreq?.Dispose();
            _invFreq = null;
        }
        base.Dispose(disposing);
    }

    /// <summary>
    /// input_ids [B, T] (or inputs_embeds [B, T, hidden]), attention_mask [B, past + T] → last_hidden_state [B, T, hidden].
    /// Positions come from position_ids, else arange(past, past + T) whatever the mask (HF 5.x
    /// <c>position_ids = cache_position.unsqueeze(0)</c>); pass mask-derived ids for left-padded batches, as HF's
    /// generate does.
    /// </summary>
    public override ModelOutput forward(ModelInput input)
    {
        var (b, t) = CausalHeads.BatchShape(input, GetType().Name);
        using var scope = NewDisposeScope();
        var pass = new BackbonePass(input, b, t, CheckpointsLayers);
        var h = input.InputsEmbeds ?? embed_tokens.call(input.InputIds!);         // [B, T, hidden]
        var device = h.device;
        var positions = pass.PositionIds(device, ModelOps.ArangePositionIds);
        pass.UseCausalMasks(layers.Count, h.dtype, device, _c.SlidingWindowOf);
        var invFreq = InvFreqOn(device);
        var rope = RotaryEmbedding.CosSin(positions, invFreq, h.dtype, RotaryEmbedding.RotaryDim(_c));   // [B, 1, T, D_rot] each
        h = pass.RunLayers(layers, h, rope);
        return ModelOps.MoveOut(pass.Output(norm.forward(BackbonePass.ToDeviceOf(norm, h))));
    }
}
