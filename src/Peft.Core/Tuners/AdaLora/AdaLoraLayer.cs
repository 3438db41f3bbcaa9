using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// An AdaLoRA layer (PEFT <c>AdaLoraLayer(LoraLayer)</c>): per adapter the SVD-form factors <c>lora_A</c> [r, in]
/// (right singular vectors), <c>lora_E</c> [r, 1] (singular values), <c>lora_B</c> [out, r] (left singular vectors),
/// and <c>ranknum</c> [1] (a frozen parameter holding the initial rank, which divides the scale). State-dict keys
/// <c>lora_A.&lt;adapter&gt;</c>, ...; files store <c>lora_A</c>, <c>lora_B</c>, <c>lora_E</c> (not <c>ranknum</c>).
/// Scale = lora_alpha (r when alpha is 0), applied as <c>scale / (ranknum + 1e-5)</c>.
/// </summary>
public abstract class AdaLoraLayer : LoraLayer
{
    private readonly AdapterModuleDict<nn.Module<Tensor, Tensor>> lora_dropout = new();
    private readonly AdapterParameterDict lora_A = new();
    private readonly AdapterParameterDict lora_B = new();
    private readonly AdapterParameterDict lora_E = new();
    private readonly AdapterParameterDict ranknum = new();

    /// <summary>Wraps <paramref name="baseLayer"/>; subclasses call RegisterComponents then <see cref="UpdateLayer"/>.</summary>
    protected AdaLoraLayer(string name, nn.Module<Tensor, Tensor> baseLayer) : base(name, baseLayer) { }

    /// <summary>Input features of the base layer.</summary>
    public long InFeatures => WeightAccess!.InFeatures;

    /// <summary>Output features of the base layer.</summary>
    public long OutFeatures => WeightAccess!.OutFeatures;

    /// <summary>The width of lora_A: input features (in_channels · kernel area for a convolution).</summary>
    protected virtual long AWidth => InFeatures;

    /// <summary>lora_A of an adapter, [r, in].</summary>
    public Parameter LoraA(string adapterName) => lora_A[adapterName];

    /// <summary>lora_B of an adapter, [out, r].</summary>
    public Parameter LoraB(string adapterName) => lora_B[adapterName];

    /// <summary>lora_E of an adapter, [r, 1].</summary>
    public Parameter LoraE(string adapterName) => lora_E[adapterName];

    /// <summary>ranknum of an adapter, [1] (frozen).</summary>
    public Parameter RankNum(string adapterName) => ranknum[adapterName];

    /// <summary>The dropout of an adapter's input.</summary>
    protected nn.Module<Tensor, Tensor> Dropout(string adapterName) => lora_dropout[adapterName];

    /// <summary>Whether this layer holds <paramref name="adapterName"/>.</summary>
    protected bool HasAdapter(string adapterName) => lora_A.ContainsKey(adapterName);

    /// <inheritdoc />
    /// <remarks>PEFT adds the delta in place (<c>weight.data += delta</c>): in float32 for float32 adapters, rounded once (SVD linear and conv layers alike).</remarks>
    protected override Tensor MergedWeight(string adapterName, Tensor weight) =>
        AdapterDtype.CastTo(weight.add(GetDeltaWeight(adapterName), HeldScalars.One), weight.dtype);

    /// <inheritdoc />
    protected override Tensor UnmergedWeight(string adapterName, Tensor weight) =>
        AdapterDtype.CastTo(weight - GetDeltaWeight(adapterName), weight.dtype);

    /// <summary>
    /// Adds (or re-creates) <paramref name="adapterName"/> with rank <paramref name="r"/> (≥ 0) (PEFT
    /// <c>update_layer</c>): A, E, B random normal, then with <c>init_lora_weights</c> E = 0 and A, B ~ N(0, 0.02);
    /// ranknum = r. Active adapters train unless the config is in inference mode.
    /// </summary>
    public override void UpdateLayer(string adapterName, int r, double alpha, LoraConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (r < 0) throw new ArgumentOutOfRangeException(nameof(r), r, $"AdaLoRA rank for adapter '{adapterName}' must be >= 0, got {r}.");
        RecordAdapter(adapterName, r, alpha, alpha > 0 ? alpha : r);
        var (dtype, device) = (WeightAccess!.ComputeDtype, WeightAccess.Device);
        lora_dropout.Set(adapterName, config.LoraDropout > 0 ? nn.Dropout(config.LoraDropout) : nn.Identity());
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var a = randn([r, AWidth], dtype: dtype, device: device);
            var e = randn([r, 1], dtype: dtype, device: device);
            var b = randn([OutFeatures, r], dtype: dtype, device: device);
            if (config.InitLoraWeights.Kind is not "false")
            {
                nn.init.zeros_(e);
                nn.init.normal_(a, 0.0, 0.02);
                nn.init.normal_(b, 0.0, 0.02);
            }
            lora_A.Set(adapterName, new Parameter(a.MoveToOuterDisposeScope()));
            lora_E.Set(adapterName, new Parameter(e.MoveToOuterDisposeScope()));
            lora_B.Set(adapterName, new Parameter(b.MoveToOuterDisposeScope()));
            ranknum.Set(adapterName, new Parameter(full([1], HeldScalars.Of((double)r), dtype: dtype, device: device).MoveToOuterDisposeScope(), requires_grad: false));
        }
        SetAdapter(ActiveAdapters, trainable: !config.InferenceMode);
    }

    /// <summary>
    /// Shrinks adapter <paramref name="adapterName"/> to the ranks kept by <paramref name="keep"/> (one flag per current
    /// rank; PEFT <c>resize_modules_by_rank_pattern</c>): the kept rows of A and E and columns of B survive, ranknum keeps
    /// its value (so the scale is unchanged) unless no rank is kept.
    /// </summary>
    public void ResizeByRankPattern(string adapterName, IReadOnlyList<bool> keep, AdaLoraConfig config, string key)
    {
        ArgumentNullException.ThrowIfNull(keep);
        ArgumentNullException.ThrowIfNull(config);
        var a = lora_A[adapterName];
        if (keep.Count != a.shape[0])
            throw new InvalidDataException($"rank_pattern[\"{key}\"] has {keep.Count} entries but the module has rank {a.shape[0]}.");
        using var scope = NewDisposeScope();
        var idx = tensor(keep.Select((k, i) => (k, i)).Where(p => p.k).Select(p => (long)p.i).ToArray(), dtype: ScalarType.Int64, device: a.device);
        Tensor keptA, keptE, keptB, oldRank;
        using (no_grad())
        {
            keptA = a.index_select(0, idx);
            keptE = lora_E[adapterName].index_select(0, idx);
            keptB = lora_B[adapterName].index_select(1, idx);
            oldRank = ranknum[adapterName].clone();
        }
        int rank = (int)idx.shape[0];
        UpdateLayer(adapterName, rank, Alpha[adapterName], config);
        if (rank == 0) return;
        using (no_grad())
        {
            lora_A[adapterName].copy_(keptA);
            lora_E[adapterName].copy_(keptE);
            lora_B[adapterName].copy_(keptB);
            ranknum[adapterName].copy_(oldRank);
        }
    }

    /// <summary>Zeroes the singular values of <paramref name="adapterName"/> whose flag in <paramref name="keep"/> is false (PEFT <c>mask_using_rank_pattern</c>).</summary>
    public void MaskSingularValues(string adapterName, IReadOnlyList<bool> keep, string key)
    {
        ArgumentNullException.ThrowIfNull(keep);
        var e = lora_E[adapterName];
        if (keep.Count != e.shape[0])
            throw new InvalidOperationException($"rank_pattern[\"{key}\"] has {keep.Count} entries but the module has rank {e.shape[0]}.");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var drop = tensor(keep.Select(k => !k).ToArray(), device: e.device).unsqueeze(-1); // [r, 1]
        e.masked_fill_(drop, HeldScalars.Of(0.0));
    }

    /// <inheritdoc />
    protected override IEnumerable<Parameter> AdapterParameters(string adapterName)
    {
        if (lora_A.ContainsKey(adapterName)) yield return lora_A[adapterName];
        if (lora_B.ContainsKey(adapterName)) yield return lora_B[adapterName];
        if (lora_E.ContainsKey(adapterName)) yield return lora_E[adapterName];
    }

    /// <inheritdoc />
    protected override void RemoveLoraState(string adapterName)
    {
        lora_dropout.Remove(adapterName);
        lora_A.Remove(adapterName);
        lora_B.Remove(adapterName);
        lora_E.Remove(adapterName);
        ranknum.Remove(adapterName);
    }

    /// <inheritdoc />
    public override IEnumerable<(string Name, Tensor Value)> AdapterTensors(string adapterName)
    {
        yield return ("lora_A", lora_A[adapterName]);
        yield return ("lora_B", lora_B[adapterName]);
        yield return ("lora_E", lora_E[adapterName]);
    }

    /// <inheritdoc />
    public override void LoadAdapterTensor(string adapterName, string name, Tensor value, string key)
    {
        Tensor target = name switch
        {
            "lora_A" => lora_A[adapterName],
            "lora_B" => lora_B[adapterName],
            "lora_E" => lora_E[adapterName],
            _ => throw new InvalidDataException($"adapter tensor '{key}': AdaLoRA layer has no '{name}' (expected lora_A, lora_B, lora_E)."),
        };
        CopyChecked(target, value, key);
    }
}
