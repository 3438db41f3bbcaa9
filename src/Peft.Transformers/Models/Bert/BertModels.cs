using Peft.Core;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Models.Bert;

/// <summary>BERT embeddings (HF <c>BertEmbeddings</c>): word + absolute position + token type, LayerNorm, dropout.</summary>
public sealed class BertEmbeddings : nn.Module
{
    /// <summary>HF <c>word_embeddings</c> [vocab, hidden].</summary>
    [field: ComponentName(Name = "word_embeddings")] public nn.Module<Tensor, Tensor> word_embeddings { get; }
    /// <summary>HF <c>position_embeddings</c> [max_position_embeddings, hidden].</summary>
    [field: ComponentName(Name = "position_embeddings")] public nn.Module<Tensor, Tensor> position_embeddings { get; }
    /// <summary>HF <c>token_type_embeddings</c> [type_vocab_size, hidden].</summary>
    [field: ComponentName(Name = "token_type_embeddings")] public nn.Module<Tensor, Tensor> token_type_embeddings { get; }
    /// <summary>HF <c>LayerNorm</c>.</summary>
    [field: ComponentName(Name = "LayerNorm")] public nn.Module<Tensor, Tensor> LayerNorm { get; }
    private readonly Dropout dropout;
    internal readonly ModuleRef<Embedding> Word;

    /// <summary>Creates the embeddings.</summary>
    public BertEmbeddings(BertConfig c, Device? device = null) : base("BertEmbeddings")
    {
        var e = StoragelessEmbedding.Create(c.VocabSize, c.HiddenSize, paddingIdx: c.PadTokenId, device: device);
        Word = new(e);
        word_embeddings = e;
        position_embeddings = StoragelessEmbedding.Create(c.MaxPositionEmbeddings, c.HiddenSize, device: device);
        token_type_embeddings = StoragelessEmbedding.Create(c.TypeVocabSize, c.HiddenSize, device: device);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, device: device);
        dropout = nn.Dropout(c.HiddenDropoutProb);
        RegisterComponents();
    }

    /// <summary>→ [B, T, hidden]. Positions default to arange(past, past + T) (HF); token types to 0.</summary>
    public Tensor Forward(Tensor? inputIds, Tensor? inputsEmbeds, Tensor? tokenTypeIds, Tensor? positionIds, long past = 0)
    {
        var x = inputsEmbeds ?? word_embeddings.call(inputIds!);                       // [B, T, hidden]
        long b = x.shape[0], t = x.shape[1];
        var device = x.device;
        positionIds ??= arange(HeldScalars.Of(past), HeldScalars.Of(past + t), dtype: ScalarType.Int64, device: device).unsqueeze(0).expand(b, t);
        tokenTypeIds ??= zeros([b, t], dtype: ScalarType.Int64, device: device);
        x = x.add(token_type_embeddings.forward(tokenTypeIds.to(device)), HeldScalars.One).add(position_embeddings.forward(positionIds.to(device)), HeldScalars.One);
        return dropout.forward(LayerNorm.forward(x));
    }
}

/// <summary>HF <c>BertSelfAttention</c>: query, key, value.</summary>
public sealed class BertSelfAttention : nn.Module
{
    /// <summary>HF <c>query</c>.</summary>
    [field: ComponentName(Name = "query")] public nn.Module<Tensor, Tensor> query { get; }
    /// <summary>HF <c>key</c>.</summary>
    [field: ComponentName(Name = "key")] public nn.Module<Tensor, Tensor> key { get; }
    /// <summary>HF <c>value</c>.</summary>
    [field: ComponentName(Name = "value")] public nn.Module<Tensor, Tensor> value { get; }
    private readonly int _heads, _headDim;
    private readonly double _dropout;

    /// <summary>Creates the attention.</summary>
    public BertSelfAttention(BertConfig c, Device? device = null) : base("BertSelfAttention")
    {
        _heads = c.NumAttentionHeads; _headDim = c.HiddenSize / c.NumAttentionHeads; _dropout = c.AttentionProbsDropoutProb;
        query = nn.Linear(c.HiddenSize, c.HiddenSize, device: device);
        key = nn.Linear(c.HiddenSize, c.HiddenSize, device: device);
        value = nn.Linear(c.HiddenSize, c.HiddenSize, device: device);
        RegisterComponents();
    }

    /// <summary>
    /// x [B, T, hidden], additive mask [B, 1, 1, P + T] → context [B, T, hidden]. <paramref name="past"/> holds
    /// prefix keys/values [B, H, P, D] that are attended to but not updated (HF encoder use of past_key_values,
    /// e.g. PEFT prefix tuning).
    /// </summary>
    public Tensor Forward(Tensor x, Tensor? mask, (Tensor Key, Tensor Value)? past = null)
    {
        long b = x.shape[0], t = x.shape[1];
        var q = query.forward(x).view(b, t, _heads, _headDim).transpose(1, 2);   // [B, H, T, D]
        var k = key.forward(x).view(b, t, _heads, _headDim).transpose(1, 2);
        var v = value.forward(x).view(b, t, _heads, _headDim).transpose(1, 2);
        if (past is { } p)
        {
            k = cat([p.Key.to(k.dtype), k], 2);                                   // [B, H, P + T, D]
            v = cat([p.Value.to(v.dtype), v], 2);
        }
        return ModelOps.Attend(q, k, v, mask, training ? _dropout : 0.0);       // [B, T, hidden]
    }
}

/// <summary>HF <c>BertSelfOutput</c> / <c>BertOutput</c>: LayerNorm(dropout(dense(x)) + residual).</summary>
public sealed class BertResidualOutput : nn.Module
{
    /// <summary>HF <c>dense</c>.</summary>
    [field: ComponentName(Name = "dense")] public nn.Module<Tensor, Tensor> dense { get; }
    /// <summary>HF <c>LayerNorm</c>.</summary>
    [field: ComponentName(Name = "LayerNorm")] public nn.Module<Tensor, Tensor> LayerNorm { get; }
    private readonly Dropout dropout;

    /// <summary>Creates the block with a dense layer from <paramref name="inFeatures"/> to hidden.</summary>
    public BertResidualOutput(BertConfig c, int inFeatures, Device? device = null) : base("BertResidualOutput")
    {
        dense = nn.Linear(inFeatures, c.HiddenSize, device: device);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, device: device);
        dropout = nn.Dropout(c.HiddenDropoutProb);
        RegisterComponents();
    }

    /// <summary>x [B, T, in], residual [B, T, hidden] → [B, T, hidden].</summary>
    public Tensor Forward(Tensor x, Tensor residual) => LayerNorm.forward(dropout.forward(dense.forward(x)).add(residual, HeldScalars.One));
}

/// <summary>HF <c>BertAttention</c>: self + output.</summary>
public sealed class BertAttention : nn.Module
{
    /// <summary>HF <c>self</c>.</summary>
    [field: ComponentName(Name = "self")] public BertSelfAttention self { get; }
    /// <summary>HF <c>output</c>.</summary>
    [field: ComponentName(Name = "output")] public BertResidualOutput output { get; }

    /// <summary>Creates the attention block.</summary>
    public BertAttention(BertConfig c, Device? device = null) : base("BertAttention")
    {
        self = new BertSelfAttention(c, device);
        output = new BertResidualOutput(c, c.HiddenSize, device);
        RegisterComponents();
    }

    /// <summary>x [B, T, hidden] → [B, T, hidden].</summary>
    public Tensor Forward(Tensor x, Tensor? mask, (Tensor Key, Tensor Value)? past = null) => output.Forward(self.Forward(x, mask, past), x);
}

/// <summary>HF <c>BertIntermediate</c>: dense + activation.</summary>
public sealed class BertIntermediate : nn.Module<Tensor, Tensor>
{
    /// <summary>HF <c>dense</c>.</summary>
    [field: ComponentName(Name = "dense")] public nn.Module<Tensor, Tensor> dense { get; }
    private readonly Func<Tensor, Tensor> _act;

    /// <summary>Creates the block.</summary>
    public BertIntermediate(BertConfig c, Device? device = null) : base("BertIntermediate")
    {
        dense = nn.Linear(c.HiddenSize, c.IntermediateSize, device: device);
        _act = ModelOps.Activation(c.HiddenAct);
        RegisterComponents();
    }

    /// <summary>x [B, T, hidden] → [B, T, intermediate].</summary>
    public override Tensor forward(Tensor x) => _act(dense.forward(x));
}

/// <summary>HF <c>BertLayer</c>.</summary>
public sealed class BertLayer : nn.Module, ITransformerLayer
{
    /// <summary>HF <c>attention</c>.</summary>
    [field: ComponentName(Name = "attention")] public BertAttention attention { get; }
    /// <summary>HF <c>intermediate</c>.</summary>
    [field: ComponentName(Name = "intermediate")] public BertIntermediate intermediate { get; }
    /// <summary>HF <c>output</c>.</summary>
    [field: ComponentName(Name = "output")] public BertResidualOutput output { get; }

    /// <summary>Creates the layer.</summary>
    public BertLayer(BertConfig c, Device? device = null) : base("BertLayer")
    {
        attention = new BertAttention(c, device);
        intermediate = new BertIntermediate(c, device);
        output = new BertResidualOutput(c, c.IntermediateSize, device);
        RegisterComponents();
    }

    /// <summary>x [B, T, hidden] → [B, T, hidden].</summary>
    public Tensor Forward(Tensor x, Tensor? mask, (Tensor Key, Tensor Value)? past = null)
    {
        var a = attention.Forward(x, mask, past);
        return output.Forward(intermediate.forward(a), a);
    }

    /// <remarks>The cache is only read: its entry for this layer is a prefix attended to and not extended (HF encoder).</remarks>
    Tensor ITransformerLayer.Forward(Tensor hidden, in LayerInputs inputs) => Forward(hidden, inputs.Mask, inputs.Cache?[inputs.LayerIndex]);
}

/// <summary>HF <c>BertEncoder</c>: the layer stack ("encoder.layer.N").</summary>
public sealed class BertEncoder : nn.Module
{
    /// <summary>HF <c>layer</c>.</summary>
    [field: ComponentName(Name = "layer")] public ModuleList<BertLayer> layer { get; }

    /// <summary>Creates the encoder.</summary>
    public BertEncoder(BertConfig c, Device? device = null) : base("BertEncoder")
    {
        layer = new ModuleList<BertLayer>(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new BertLayer(c, device)).ToArray());
        RegisterComponents();
    }
}

/// <summary>HF <c>BertPooler</c>: tanh(dense(first token)).</summary>
public sealed class BertPooler : nn.Module<Tensor, Tensor>
{
    /// <summary>HF <c>dense</c>.</summary>
    [field: ComponentName(Name = "dense")] public nn.Module<Tensor, Tensor> dense { get; }

    /// <summary>Creates the pooler.</summary>
    public BertPooler(BertConfig c, Device? device = null) : base("BertPooler")
    {
        dense = nn.Linear(c.HiddenSize, c.HiddenSize, device: device);
        RegisterComponents();
    }

    /// <summary>h [B, T, hidden] → [B, hidden].</summary>
    public override Tensor forward(Tensor h) => dense.forward(h.select(1, 0)).tanh();
}

/// <summary>BERT backbone (HF <c>BertModel</c>): embeddings, encoder, optional pooler.</summary>
public sealed class BertModel : PreTrainedModel
{
    /// <summary>HF <c>embeddings</c>.</summary>
    [field: ComponentName(Name = "embeddings")] public BertEmbeddings embeddings { get; }
    /// <summary>HF <c>encoder</c>.</summary>
    [field: ComponentName(Name = "encoder")] public BertEncoder encoder { get; }
    /// <summary>HF <c>pooler</c> (absent for token classification, QA and MLM heads, as in HF).</summary>
    [field: ComponentName(Name = "pooler")] public BertPooler? pooler { get; }
    private readonly BertConfig _c;

    /// <summary>Builds the backbone (random weights; parameters on <paramref name="device"/>, meta = no storage); <paramref name="addPoolingLayer"/> as HF's <c>add_pooling_layer</c>.</summary>
    public BertModel(BertConfig config, bool addPoolingLayer = true, Device? device = null) : base(nameof(BertModel), config)
    {
        _c = config;
        embeddings = new BertEmbeddings(config, device);
        encoder = new BertEncoder(config, device);
        if (addPoolingLayer) pooler = new BertPooler(config, device);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override string BaseModelPrefix => "bert";
    /// <inheritdoc />
    public override bool IsBaseModel => true;
    /// <inheritdoc />
    public override TransformerDimensions Dimensions =>
        new(_c.NumHiddenLayers, _c.NumAttentionHeads, _c.NumAttentionHeads, _c.HiddenSize, _c.HiddenSize / _c.NumAttentionHeads);
    /// <inheritdoc />
    public override Embedding GetInputEmbeddings() => embeddings.Word.Value;
    /// <inheritdoc />
    protected internal override void AfterInit() => ModelOps.ZeroPaddingRow(embeddings.Word.Value, _c.PadTokenId);

    /// <summary>
    /// input_ids [B, T] (or inputs_embeds), attention_mask [B, P + T] (padding on either side), token_type_ids [B, T] →
    /// last_hidden_state [B, T, hidden] and pooler_output [B, hidden] (with a pooler). A given
    /// <see cref="ModelInput.PastKeyValues"/> (P prefix positions per layer, e.g. from PEFT prefix tuning) is attended
    /// to and left unchanged, and positions start at P, as in HF's encoder.
    /// </summary>
    public override ModelOutput forward(ModelInput input)
    {
        var (b, t) = CausalHeads.BatchShape(input, nameof(BertModel));
        using var scope = NewDisposeScope();
        var pass = new BackbonePass(input, b, t, CheckpointsLayers, createCache: false);
        long past = pass.PastLength;
        if (input.AttentionMask is not null && input.AttentionMask.shape[1] != past + t)
            throw new ArgumentException($"BertModel: attention_mask has length {input.AttentionMask.shape[1]} but past ({past}) + new ({t}) = {past + t} positions.");
        var x = embeddings.Forward(input.InputIds, input.InputsEmbeds, input.TokenTypeIds, input.PositionIds, past);
        pass.UsePaddingMask(encoder.layer.Count, x.dtype, x.device);                 // [B, 1, 1, P + T]
        x = pass.RunLayers(encoder.layer, x);
        return ModelOps.MoveOut(pass.Output(x, pooler?.forward(x)));
    }
}

/// <summary>Common members of the BERT heads.</summary>
public abstract class BertPreTrainedHead : PreTrainedModel
{
    /// <summary>HF <c>bert</c>: the backbone.</summary>
    [field: ComponentName(Name = "bert")] public BertModel bert { get; }

    /// <summary>Creates the head over a new backbone; the derived constructor calls <c>RegisterComponents()</c>.</summary>
    protected BertPreTrainedHead(string name, BertConfig config, bool addPoolingLayer, Device? device = null) : base(name, config) =>
        bert = new BertModel(config, addPoolingLayer, device);

    /// <inheritdoc />
    public override string BaseModelPrefix => "bert";
    /// <inheritdoc />
    public override TransformerDimensions Dimensions => bert.Dimensions;
    /// <inheritdoc />
    public override Embedding GetInputEmbeddings() => bert.GetInputEmbeddings();
    /// <inheritdoc />
    protected internal override void AfterInit() => bert.AfterInit();

    /// <summary>Output with the backbone's tensors moved to the caller's scope.</summary>
    protected static ModelOutput Build(ModelOutput o, Tensor? logits, Tensor? loss, Tensor? start = null, Tensor? end = null) =>
        ModelOps.MoveOut(o with { Logits = logits, Loss = loss, StartLogits = start, EndLogits = end });
}

/// <summary>BERT sequence classifier (HF <c>BertForSequenceClassification</c>): dropout + <c>classifier</c> on the pooled output.</summary>
public sealed class BertForSequenceClassification : BertPreTrainedHead
{
    /// <summary>HF <c>classifier</c> [num_labels, hidden].</summary>
    [field: ComponentName(Name = "classifier")] public nn.Module<Tensor, Tensor> classifier { get; }
    private readonly Dropout dropout;

    /// <summary>Builds the model (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public BertForSequenceClassification(BertConfig config, Device? device = null) : base(nameof(BertForSequenceClassification), config, true, device)
    {
        dropout = nn.Dropout(config.ClassifierDropout ?? config.HiddenDropoutProb);
        classifier = nn.Linear(config.HiddenSize, config.NumLabels, device: device);
        RegisterComponents();
    }

    /// <summary>Logits [B, num_labels]; loss by problem_type when labels are given.</summary>
    public override ModelOutput forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        var o = bert.forward(input);
        var logits = classifier.forward(dropout.forward(o.PoolerOutput!));
        var loss = input.Labels is null ? null : ModelOps.ClassificationLoss(logits, input.Labels, Config.NumLabels, Config.ProblemType);
        return Build(o, logits, loss);
    }
}

/// <summary>BERT token classifier (HF <c>BertForTokenClassification</c>): dropout + <c>classifier</c> per token.</summary>
public sealed class BertForTokenClassification : BertPreTrainedHead
{
    /// <summary>HF <c>classifier</c> [num_labels, hidden].</summary>
    [field: ComponentName(Name = "classifier")] public nn.Module<Tensor, Tensor> classifier { get; }
    private readonly Dropout dropout;

    /// <summary>Builds the model (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public BertForTokenClassification(BertConfig config, Device? device = null) : base(nameof(BertForTokenClassification), config, false, device)
    {
        dropout = nn.Dropout(config.ClassifierDropout ?? config.HiddenDropoutProb);
        classifier = nn.Linear(config.HiddenSize, config.NumLabels, device: device);
        RegisterComponents();
    }

    /// <summary>Logits [B, T, num_labels]; cross-entropy (−100 ignored) when labels [B, T] are given.</summary>
    public override ModelOutput forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        var o = bert.forward(input);
        var logits = classifier.forward(dropout.forward(o.LastHiddenState!));
        var loss = input.Labels is null ? null : ModelOps.TokenLoss(logits, input.Labels);
        return Build(o, logits, loss);
    }
}

/// <summary>BERT extractive QA (HF <c>BertForQuestionAnswering</c>): <c>qa_outputs</c> → start/end logits.</summary>
public sealed class BertForQuestionAnswering : BertPreTrainedHead
{
    /// <summary>HF <c>qa_outputs</c> [num_labels (2), hidden].</summary>
    [field: ComponentName(Name = "qa_outputs")] public nn.Module<Tensor, Tensor> qa_outputs { get; }

    /// <summary>Builds the model (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public BertForQuestionAnswering(BertConfig config, Device? device = null) : base(nameof(BertForQuestionAnswering), config, false, device)
    {
        qa_outputs = nn.Linear(config.HiddenSize, config.NumLabels, device: device);
        RegisterComponents();
    }

    /// <summary>
    /// start_logits / end_logits [B, T]; with start/end positions [B], HF's loss: mean of the two cross-entropies,
    /// positions clamped to [0, T] and T ignored.
    /// </summary>
    public override ModelOutput forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        var o = bert.forward(input);
        var logits = qa_outputs.forward(o.LastHiddenState!);                      // [B, T, 2]
        var start = logits.select(-1, 0).contiguous();                            // [B, T]
        var end = logits.select(-1, 1).contiguous();
        Tensor? loss = null;
        if (input.StartPositions is not null && input.EndPositions is not null)
        {
            long t = start.shape[1];
            var sp = input.StartPositions.to(start.device).to_type(ScalarType.Int64).view(-1).clamp(HeldScalars.Of(0), HeldScalars.Of(t));
            var ep = input.EndPositions.to(start.device).to_type(ScalarType.Int64).view(-1).clamp(HeldScalars.Of(0), HeldScalars.Of(t));
            loss = nn.functional.cross_entropy(start.to_type(ScalarType.Float32), sp, ignore_index: t)
                  .add(nn.functional.cross_entropy(end.to_type(ScalarType.Float32), ep, ignore_index: t), HeldScalars.One) / HeldScalars.Of(2);
        }
        return Build(o, null, loss, start, end);
    }
}

/// <summary>HF <c>BertPredictionHeadTransform</c>: dense, activation, LayerNorm.</summary>
public sealed class BertPredictionHeadTransform : nn.Module<Tensor, Tensor>
{
    /// <summary>HF <c>dense</c>.</summary>
    [field: ComponentName(Name = "dense")] public nn.Module<Tensor, Tensor> dense { get; }
    /// <summary>HF <c>LayerNorm</c>.</summary>
    [field: ComponentName(Name = "LayerNorm")] public nn.Module<Tensor, Tensor> LayerNorm { get; }
    private readonly Func<Tensor, Tensor> _act;

    /// <summary>Creates the transform.</summary>
    public BertPredictionHeadTransform(BertConfig c, Device? device = null) : base("BertPredictionHeadTransform")
    {
        dense = nn.Linear(c.HiddenSize, c.HiddenSize, device: device);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps, device: device);
        _act = ModelOps.Activation(c.HiddenAct);
        RegisterComponents();
    }

    /// <summary>h [B, T, hidden] → [B, T, hidden].</summary>
    public override Tensor forward(Tensor h) => LayerNorm.forward(_act(dense.forward(h)));
}

/// <summary>HF <c>BertLMPredictionHead</c>: transform, decoder tied to the word embeddings, and <c>bias</c>.</summary>
public sealed class BertLMPredictionHead : nn.Module<Tensor, Tensor>
{
    /// <summary>HF <c>transform</c>.</summary>
    [field: ComponentName(Name = "transform")] public BertPredictionHeadTransform transform { get; }
    /// <summary>HF <c>decoder</c> (weight tied to bert.embeddings.word_embeddings, not saved).</summary>
    [field: ComponentName(Name = "decoder")] public nn.Module<Tensor, Tensor> decoder { get; }
    /// <summary>HF <c>bias</c> [vocab] (saved as cls.predictions.bias).</summary>
    public Parameter bias;

    /// <summary>Creates the head over the word embedding <paramref name="word"/>.</summary>
    public BertLMPredictionHead(BertConfig c, Embedding word, Device? device = null) : base("BertLMPredictionHead")
    {
        transform = new BertPredictionHeadTransform(c, device);
        decoder = new TiedLinear(() => word.weight!);
        bias = new Parameter(zeros(c.VocabSize, device: device));
        RegisterComponents();
    }

    /// <summary>h [B, T, hidden] → [B, T, vocab].</summary>
    public override Tensor forward(Tensor h) => decoder.forward(transform.forward(h)).add(bias, HeldScalars.One);
}

/// <summary>HF <c>BertOnlyMLMHead</c> ("cls").</summary>
public sealed class BertOnlyMLMHead : nn.Module<Tensor, Tensor>
{
    /// <summary>HF <c>predictions</c>.</summary>
    [field: ComponentName(Name = "predictions")] public BertLMPredictionHead predictions { get; }

    /// <summary>Creates the head.</summary>
    public BertOnlyMLMHead(BertConfig c, Embedding word, Device? device = null) : base("BertOnlyMLMHead")
    {
        predictions = new BertLMPredictionHead(c, word, device);
        RegisterComponents();
    }

    /// <summary>h [B, T, hidden] → [B, T, vocab].</summary>
    public override Tensor forward(Tensor h) => predictions.forward(h);
}

/// <summary>BERT masked LM (HF <c>BertForMaskedLM</c>): <c>cls.predictions</c> with the decoder tied to the word embeddings.</summary>
public sealed class BertForMaskedLM : BertPreTrainedHead
{
    /// <summary>HF <c>cls</c>.</summary>
    [field: ComponentName(Name = "cls")] public BertOnlyMLMHead cls { get; }

    /// <summary>Builds the model (random weights; parameters on <paramref name="device"/>, meta = no storage).</summary>
    public BertForMaskedLM(BertConfig config, Device? device = null) : base(nameof(BertForMaskedLM), config, false, device)
    {
        cls = new BertOnlyMLMHead(config, bert.GetInputEmbeddings(), device);
        RegisterComponents();
    }

    /// <inheritdoc />
    protected internal override IReadOnlyCollection<string> TiedCheckpointKeys => ["cls.predictions.decoder.weight", "cls.predictions.decoder.bias"];
    /// <inheritdoc />
    protected internal override IEnumerable<Parameter> VocabularyBiases() => [cls.predictions.bias];

    /// <summary>Logits [B, T, vocab]; cross-entropy (−100 ignored) when labels [B, T] are given.</summary>
    public override ModelOutput forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        var o = bert.forward(input);
        var logits = cls.forward(o.LastHiddenState!);
        var loss = input.Labels is null ? null : ModelOps.TokenLoss(logits, input.Labels);
        return Build(o, logits, loss);
    }
}
