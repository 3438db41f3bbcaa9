using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// LoRA on an embedding (PEFT <c>lora.Embedding</c>): y = E[ids] + s · (Aᵀ[ids]) · Bᵀ with A [r, num_embeddings],
/// B [dim, r]. State-dict keys <c>lora_embedding_A.&lt;adapter&gt;</c>, <c>lora_embedding_B.&lt;adapter&gt;</c>; saved
/// as <c>lora_embedding_A</c> / <c>lora_embedding_B</c>. Default init: A zero, B normal. Dropout does not apply.
/// </summary>
public sealed class LoraEmbedding : LoraLayer
{
    private readonly AdapterParameterDict lora_embedding_A = new();
    private readonly AdapterParameterDict lora_embedding_B = new();

    /// <summary>Wraps <paramref name="baseLayer"/> and adds <paramref name="adapterName"/>.</summary>
    public LoraEmbedding(Embedding baseLayer, string adapterName, int r, double alpha, LoraConfig config) : base("LoraEmbedding", baseLayer)
    {
        NumEmbeddings = baseLayer.weight!.shape[0];
        EmbeddingDim = baseLayer.weight.shape[1];
        RegisterComponents();
        UpdateLayer(adapterName, r, alpha, config);
    }

    /// <summary>Vocabulary size.</summary>
    public long NumEmbeddings { get; }

    /// <summary>Embedding width.</summary>
    public long EmbeddingDim { get; }

    /// <inheritdoc />
    public override void UpdateLayer(string adapterName, int r, double alpha, LoraConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.UseDora) throw new NotSupportedException("DoRA on embedding layers is not supported by Peft.NET.");
        SetAdapterScale(adapterName, r, alpha, config);
        var w = BaseWeight;
        var a = zeros([r, NumEmbeddings], dtype: w.dtype, device: w.device);
        var b = zeros([EmbeddingDim, r], dtype: w.dtype, device: w.device);
        using (no_grad())
        {
            switch (config.InitLoraWeights.Kind ?? "true")
            {
                case "false":
                    nn.init.normal_(a);
                    nn.init.normal_(b);
                    break;
                default:
                    nn.init.normal_(b);
                    break;
            }
        }
        lora_embedding_A.Set(adapterName, new Parameter(a));
        lora_embedding_B.Set(adapterName, new Parameter(b));
        SetAdapter(ActiveAdapters);
    }

    /// <inheritdoc />
    public override Tensor GetDeltaWeight(string adapterName) =>
        lora_embedding_B[adapterName].matmul(lora_embedding_A[adapterName]).t().mul(HeldScalars.Of(Scaling[adapterName]));

    /// <inheritdoc />
    protected override IEnumerable<Parameter> AdapterParameters(string adapterName)
    {
        if (lora_embedding_A.ContainsKey(adapterName)) yield return lora_embedding_A[adapterName];
        if (lora_embedding_B.ContainsKey(adapterName)) yield return lora_embedding_B[adapterName];
    }

    /// <inheritdoc />
    protected override void RemoveLoraState(string adapterName)
    {
        lora_embedding_A.Remove(adapterName);
        lora_embedding_B.Remove(adapterName);
    }

    /// <inheritdoc />
    protected override Tensor MergedWeight(string adapterName, Tensor weight) => weight.add(GetDeltaWeight(adapterName).to(weight.dtype), HeldScalars.One);

    /// <inheritdoc />
    protected override Tensor UnmergedWeight(string adapterName, Tensor weight) => weight - GetDeltaWeight(adapterName).to(weight.dtype);

    /// <inheritdoc />
    public override IEnumerable<(string Name, Tensor Value)> AdapterTensors(string adapterName)
    {
        yield return ("lora_embedding_A", lora_embedding_A[adapterName]);
        yield return ("lora_embedding_B", lora_embedding_B[adapterName]);
    }

    /// <inheritdoc />
    public override void LoadAdapterTensor(string adapterName, string name, Tensor value, string key)
    {
        Tensor target = name switch
        {
            "lora_embedding_A" => lora_embedding_A[adapterName],
            "lora_embedding_B" => lora_embedding_B[adapterName],
            _ => throw new InvalidDataException($"adapter tensor '{key}': LoRA embedding has no '{name}' (expected lora_embedding_A, lora_embedding_B)."),
        };
        CopyChecked(target, value, key);
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x) => AdapterForward(x, lora_embedding_A.ContainsKey, Delta);

    /// <summary>s · (Aᵀ[ids]) · Bᵀ for ids [...] → [..., dim].</summary>
    private Tensor Delta(string name, Tensor ids)
    {
        var table = lora_embedding_A[name].t(); // [num_embeddings, r]
        var afterA = table.index_select(0, ids.flatten()).view([.. ids.shape, table.shape[1]]);
        return afterA.matmul(lora_embedding_B[name].t()).mul(HeldScalars.Of(Scaling[name]));
    }
}
