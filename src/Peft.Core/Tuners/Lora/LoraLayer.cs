using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// What every LoRA layer shares (PEFT <c>LoraLayer</c>): per adapter its rank, alpha and scale, the LoRA forward with
/// mixed-adapter batches, on top of the method-neutral <see cref="BaseTunerLayer"/> (base layer, active / merged
/// adapters, merge / unmerge). Subclasses: <see cref="LoraLinear"/> (Linear, GPT-2 Conv1D and any
/// <see cref="IBaseLayerWeight"/> linear such as a quantized one), <see cref="LoraEmbedding"/>, <see cref="LoraConv2d"/>;
/// AdaLoRA's SVD layer derives from it as PEFT's <c>AdaLoraLayer(LoraLayer)</c> does.
/// </summary>
public abstract class LoraLayer : BaseTunerLayer, IMixedBatchTunerLayer
{
    private readonly Dictionary<string, int> _r = new(StringComparer.Ordinal);
    private readonly Dictionary<string, double> _alpha = new(StringComparer.Ordinal);
    private readonly Dictionary<string, double> _scaling = new(StringComparer.Ordinal);

    /// <summary>Wraps <paramref name="baseLayer"/>; subclasses register their adapter containers then call RegisterComponents.</summary>
    protected LoraLayer(string name, nn.Module<Tensor, Tensor> baseLayer) : base(name, baseLayer) { }

    /// <summary>Rank per adapter (PEFT <c>r</c>).</summary>
    public IReadOnlyDictionary<string, int> Rank => _r;

    /// <summary>Alpha per adapter (PEFT <c>lora_alpha</c>).</summary>
    public IReadOnlyDictionary<string, double> Alpha => _alpha;

    /// <summary>Scale per adapter: alpha / r, or alpha / √r with rsLoRA (PEFT <c>scaling</c>).</summary>
    public IReadOnlyDictionary<string, double> Scaling => _scaling;

    /// <inheritdoc />
    public IReadOnlyList<string>? RowAdapterNames { get; set; }

    /// <summary>The base layer's weight parameter, stored as the base layer stores it ([out, in] for Linear, [in, out] for Conv1D). Throws for a base layer without a weight parameter (quantized): use <see cref="BaseTunerLayer.WeightAccess"/>.</summary>
    public Parameter BaseWeight => FindParameter(base_layer, "weight")
        ?? throw new InvalidOperationException($"{base_layer.GetType().Name} has no 'weight' parameter.");

    /// <summary>The base layer's bias, or null.</summary>
    public Parameter? BaseBias => FindParameter(base_layer, "bias");

    /// <summary>Records rank/alpha/scale for <paramref name="adapterName"/> (called by subclasses' <c>UpdateLayer</c>).</summary>
    protected void SetAdapterScale(string adapterName, int r, double alpha, LoraConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (r <= 0) throw new ArgumentOutOfRangeException(nameof(r), r, $"LoRA rank for adapter '{adapterName}' must be > 0, got {r}.");
        if (!(alpha > 0)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, $"lora_alpha for adapter '{adapterName}' must be > 0, got {alpha}.");
        RegisterAdapter(adapterName);
        _r[adapterName] = r;
        _alpha[adapterName] = alpha;
        _scaling[adapterName] = config.Scaling(r, alpha);
    }

    /// <summary>
    /// PEFT's <c>reset_lora_parameters</c> for the linear and conv layers: <c>init_lora_weights</c> true (default)
    /// → A Kaiming-uniform (a = √5), B zeros; "gaussian" → A ~ N(0, 1/r), B zeros; otherwise (false, or an init applied
    /// later by a variant) both keep the module's default init. A [r, in, ...], B [out, r, ...], under no_grad.
    /// </summary>
    internal static void InitLinearFamilyWeights(Tensor a, Tensor b, LoraConfig config, int r)
    {
        using var _ = no_grad();
        switch (config.InitLoraWeights.Kind ?? "true")
        {
            case "true":
                nn.init.kaiming_uniform_(a, a: Math.Sqrt(5));
                nn.init.zeros_(b);
                break;
            case "gaussian":
                nn.init.normal_(a, 0, 1.0 / r);
                nn.init.zeros_(b);
                break;
        }
    }

    /// <summary>Records rank, alpha and scale as given, without LoRA's checks (AdaLoRA: rank 0 allowed, scale = alpha).</summary>
    protected void RecordAdapter(string adapterName, int r, double alpha, double scaling)
    {
        RegisterAdapter(adapterName);
        _r[adapterName] = r;
        _alpha[adapterName] = alpha;
        _scaling[adapterName] = scaling;
    }

    /// <summary>Sets the scale of an adapter directly (weighted adapters).</summary>
    internal void OverrideScaling(string adapterName, double scaling) => _scaling[adapterName] = scaling;

    /// <summary>Adds (or re-initialises) <paramref name="adapterName"/> with rank <paramref name="r"/> and alpha <paramref name="alpha"/> (PEFT <c>update_layer</c>).</summary>
    public abstract void UpdateLayer(string adapterName, int r, double alpha, LoraConfig config);

    /// <summary>The weight change of one adapter, in the base weight's storage layout (PEFT <c>get_delta_weight</c>). Caller owns the result.</summary>
    public abstract Tensor GetDeltaWeight(string adapterName);

    /// <summary>Removes the adapter's modules / parameters (the subclass's part).</summary>
    protected abstract void RemoveLoraState(string adapterName);

    /// <inheritdoc />
    protected sealed override void RemoveAdapterState(string adapterName)
    {
        RemoveLoraState(adapterName);
        _r.Remove(adapterName);
        _alpha.Remove(adapterName);
        _scaling.Remove(adapterName);
    }

    /// <summary>
    /// The dtype the input is cast to before an adapter's math (PEFT <c>_cast_input_dtype(x, lora_A.weight.dtype)</c>),
    /// or null when the layer does not cast its input (LoRA Embedding: the input is token ids).
    /// </summary>
    protected virtual ScalarType? AdapterInputDtype(string adapterName) => null;

    /// <summary>
    /// The forward every LoRA layer shares (PEFT <c>LoraLayer.forward</c>): the base layer alone when adapters are
    /// disabled (unmerging first) or merged; otherwise the base output with each active adapter applied, or, for a
    /// mixed-adapter batch, each row's own adapter term added (PEFT <c>_mixed_batch_forward</c>; "__base__" rows get none).
    /// The input is cast to <see cref="AdapterInputDtype"/> before each adapter (float32 adapters on a bfloat16 base) and
    /// the result leaves in the base output's dtype; the mixed batch casts each adapter's term to it before adding, as PEFT.
    /// </summary>
    /// <param name="x">The layer input.</param>
    /// <param name="hasAdapter">True when this layer holds the named adapter.</param>
    /// <param name="delta">The additive term of one adapter for (rows of) <paramref name="x"/>.</param>
    /// <param name="apply">Applies one adapter to the running result; null = add <paramref name="delta"/> (plain LoRA).</param>
    protected Tensor AdapterForward(Tensor x, Func<string, bool> hasAdapter, Func<string, Tensor, Tensor> delta,
        Func<string, Tensor, Tensor, Tensor>? apply = null)
    {
        if (RowAdapterNames is { } rows && !DisableAdapters && !Merged)
        {
            var result = base_layer.forward(x).clone();
            foreach (var name in rows.Distinct())
            {
                if (!hasAdapter(name)) continue;
                var idx = tensor(rows.Select((n, i) => (n, i)).Where(p => p.n == name).Select(p => (long)p.i).ToArray(), device: x.device);
                var rowsX = x.index_select(0, idx);
                if (AdapterInputDtype(name) is { } dt) rowsX = AdapterDtype.CastTo(rowsX, dt);
                result.index_add_(0, idx, AdapterDtype.CastTo(delta(name, rowsX), result.dtype), HeldScalars.Of(1));
            }
            return result;
        }
        var current = x;                                            // PEFT reassigns x: later adapters reuse the cast input
        return ActiveAdaptersForward(x, (name, _, result) =>
        {
            if (!hasAdapter(name)) return result;
            if (AdapterInputDtype(name) is { } dt) current = AdapterDtype.CastTo(current, dt);
            return apply is null ? result.add(delta(name, current), HeldScalars.One) : apply(name, current, result);
        });
    }
}
