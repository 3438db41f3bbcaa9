using Microsoft.Extensions.Logging;
using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// The LoRA tuner (PEFT <c>LoraModel</c>): finds the target modules, replaces them with <see cref="LoraLinear"/> /
/// <see cref="LoraEmbedding"/> / <see cref="LoraConv2d"/> through the ordered factory list <see cref="Dispatchers"/>,
/// and adds LoRA's bias handling to the adapter-file layout (<c>base_model.model.&lt;path&gt;.lora_A.weight</c>, ...).
/// Open for AdaLoRA (PEFT <c>AdaLoraModel(LoraModel)</c>).
/// </summary>
public class LoraModel : LayerInjectingTuner, IWeightedAdapterTuner
{
    /// <summary>PEFT's default <c>target_modules</c> per <c>model_type</c> (<c>TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING</c>).</summary>
    public static IReadOnlyDictionary<string, string[]> DefaultTargetModules { get; } = new Dictionary<string, string[]>(StringComparer.Ordinal)
    {
        ["t5"] = ["q", "v"], ["mt5"] = ["q", "v"], ["bart"] = ["q_proj", "v_proj"], ["gpt2"] = ["c_attn"],
        ["bloom"] = ["query_key_value"], ["opt"] = ["q_proj", "v_proj"], ["gptj"] = ["q_proj", "v_proj"],
        ["gpt_neox"] = ["query_key_value"], ["gpt_neo"] = ["q_proj", "v_proj"], ["bert"] = ["query", "value"],
        ["roberta"] = ["query", "value"], ["xlm-roberta"] = ["query", "value"], ["electra"] = ["query", "value"],
        ["deberta-v2"] = ["query_proj", "value_proj"], ["deberta"] = ["in_proj"], ["layoutlm"] = ["query", "value"],
        ["llama"] = ["q_proj", "v_proj"], ["chatglm"] = ["query_key_value"], ["gpt_bigcode"] = ["c_attn"],
        ["mpt"] = ["Wqkv"], ["falcon"] = ["query_key_value"], ["codegen"] = ["qkv_proj"],
        ["mistral"] = ["q_proj", "v_proj"], ["mixtral"] = ["q_proj", "v_proj"], ["stablelm"] = ["q_proj", "v_proj"],
        ["phi"] = ["q_proj", "v_proj", "fc1", "fc2"], ["gemma"] = ["q_proj", "v_proj"], ["gemma2"] = ["q_proj", "v_proj"],
        ["qwen2"] = ["q_proj", "v_proj"], ["qwen3"] = ["q_proj", "v_proj"], ["distilbert"] = ["q_lin", "v_lin"],
    };

    /// <summary>Wraps <paramref name="model"/>; adapters are added with <see cref="BaseTuner.InjectAdapter"/>.</summary>
    public LoraModel(nn.Module model, ILogger? logger = null) : this("LoraModel", model, logger) { }

    /// <summary>For subclasses (AdaLoRA): wraps <paramref name="model"/> under the module name <paramref name="name"/>.</summary>
    protected LoraModel(string name, nn.Module model, ILogger? logger) : base(name, model, logger) { }

    /// <inheritdoc />
    public override string Prefix => "lora_";

    /// <inheritdoc />
    public override PeftConfig PrepareConfig(PeftConfig config)
    {
        var lora = (LoraConfig)config;
        lora.Validate();
        if (lora.TargetModules is null)
        {
            var type = (Model as IPreTrainedModel)?.ModelType;
            if (type is null || !DefaultTargetModules.TryGetValue(type, out var defaults))
                throw new ArgumentException($"Please specify target_modules in the LoRA config: there is no default for model type '{type ?? Model.GetType().Name}'.");
            lora = lora with { TargetModules = defaults };
        }
        if (lora.TargetModules.IsAllLinear) lora = lora with { TargetModules = ExpandAllLinear(lora.TaskType, lora.ModulesToSave) };
        return lora;
    }

    /// <inheritdoc />
    protected override string DescribeTargets(PeftConfig config)
    {
        var t = ((LoraConfig)config).TargetModules;
        if (t?.Names is { Count: > 12 } n) return "[" + string.Join(", ", n.Take(12).Select(x => $"'{x}'")) + $", ... ({n.Count} names)]";
        return t?.ToString() ?? "(none)";
    }

    /// <inheritdoc />
    protected override bool IsTarget(PeftConfig config, string key)
    {
        var lora = (LoraConfig)config;
        if (key.Length == 0) return false;
        if (lora.ExcludeModules is { } ex && ex.Matches(key)) return false;
        var targets = lora.TargetModules!;
        if (targets.Names is null) return targets.Matches(key);
        if (targets.ContainsExact(key)) return true;
        return targets.Matches(key) && InLayers(key, lora.LayersToTransform, lora.LayersPattern);
    }

    /// <summary>
    /// The ordered layer factories this tuner walks for a new target (PEFT's <c>dispatch_*</c> list); the first that
    /// returns a layer wins. Default: <see cref="LoraDispatchers.All"/>. A subclass (AdaLoRA) supplies its own list.
    /// </summary>
    protected virtual IReadOnlyList<LoraLayerFactory> Dispatchers => LoraDispatchers.All;

    /// <summary>The rank and alpha for the module at <paramref name="key"/> (PEFT: <c>rank_pattern</c> / <c>alpha_pattern</c>, else r / lora_alpha).</summary>
    protected virtual (int R, double Alpha) RankAndAlpha(LoraConfig config, string key)
    {
        ArgumentNullException.ThrowIfNull(config);
        int r = PatternKey(config.RankPattern.Keys, key) is { } rk ? config.RankPattern[rk] : config.R;
        double alpha = PatternKey(config.AlphaPattern.Keys, key) is { } ak ? config.AlphaPattern[ak] : config.LoraAlpha;
        return (r, alpha);
    }

    /// <inheritdoc />
    protected override void CreateOrUpdate(PeftConfig config, string adapterName, nn.Module target, string key, nn.Module parent, string childName)
    {
        var lora = (LoraConfig)config;
        var (r, alpha) = RankAndAlpha(lora, key);
        if (target is LoraLayer existing)
        {
            existing.UpdateLayer(adapterName, r, alpha, lora);
            return;
        }
        var request = new LoraLayerRequest(target, key, adapterName, r, alpha, lora, Warn);
        var created = Dispatchers.Select(f => f(request)).FirstOrDefault(l => l is not null)
            ?? throw new NotSupportedException(
                $"Target module '{key}' ({target.GetType().FullName}) is not supported. {GetType().Name} supports Linear, Embedding, Conv2d, Peft.Core.Modules.Conv1D and IBaseLayerWeight linears.");
        ModuleSurgery.ReplaceChild(parent, childName, created);
    }

    /// <inheritdoc />
    protected override void MarkOnlyAdaptersTrainable(PeftConfig config)
    {
        var lora = (LoraConfig)config;
        FreezeAllButAdapters();
        switch (lora.Bias)
        {
            case LoraBias.All:
                foreach (var (n, p) in Model.named_parameters())
                {
                    if (n.Contains("bias", StringComparison.Ordinal)) p.requires_grad = true;
                }
                break;
            case LoraBias.LoraOnly:
                foreach (var (_, layer) in TunerLayers())
                {
                    if (layer is LoraLayer { BaseBias: { } b }) b.requires_grad = true;
                }
                break;
        }
    }

    /// <summary>
    /// The LoRA file's tensors: the shared ones (layers, modules_to_save) plus biases — saved with <c>bias</c> "all"
    /// (every bias outside adapters) or "lora_only" (adapted layers' base biases), and accepted (not required) on load
    /// whatever the setting, as PEFT's loader does.
    /// </summary>
    protected override IEnumerable<AdapterTensorSlot> AdapterSlots(string adapterName, PeftConfig config)
    {
        var lora = (LoraConfig)config;
        foreach (var slot in base.AdapterSlots(adapterName, config)) yield return slot;
        var loraOnly = new HashSet<string>(StringComparer.Ordinal);
        if (lora.Bias == LoraBias.LoraOnly)
        {
            foreach (var (path, layer) in TunerLayers())
            {
                if (layer.AdapterNames.Contains(adapterName) && layer is LoraLayer { BaseBias: not null }) loraOnly.Add($"{path}.base_layer.bias");
            }
        }
        foreach (var (n, p) in Model.named_parameters())
        {
            if (!n.EndsWith("bias", StringComparison.Ordinal) || n.Contains(Prefix, StringComparison.Ordinal)) continue;
            if (n.Contains(".modules_to_save.", StringComparison.Ordinal) || n.Contains(".original_module.", StringComparison.Ordinal)) continue;
            bool save = lora.Bias == LoraBias.All || loraOnly.Contains(n);
            yield return new AdapterTensorSlot(StateDictRoot + n, p, Save: save, Required: false);
        }
    }

    /// <summary>
    /// Builds adapter <paramref name="adapterName"/> from existing ones (PEFT <c>add_weighted_adapter</c>): Linear
    /// (same rank; A = Σ √w·s·A_i, B = Σ √w·B_i), Cat (rank Σ r_i; A, B concatenated) or Svd (rank max r_i; truncated
    /// SVD of Σ w·ΔW_i). The new adapter has alpha = rank.
    /// </summary>
    public virtual PeftConfig AddWeightedAdapter(IReadOnlyList<string> adapters, IReadOnlyList<double> weights, string adapterName, CombinationType combinationType)
    {
        ArgumentNullException.ThrowIfNull(adapters);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentException.ThrowIfNullOrEmpty(adapterName);
        if (PeftConfigs.ContainsKey(adapterName)) throw new ArgumentException($"Adapter '{adapterName}' already exists.", nameof(adapterName));
        if (adapters.Count == 0 || adapters.Count != weights.Count)
            throw new ArgumentException($"AddWeightedAdapter needs one weight per adapter (got {adapters.Count} adapters, {weights.Count} weights).");
        var loras = adapters.Select(a => PeftConfigs.TryGetValue(a, out var c) && c is LoraConfig l ? l
            : throw new ArgumentException($"Adapter '{a}' does not exist or is not a LoRA adapter.")).ToList();
        var ranks = loras.Select(l => l.R).ToList();
        int newRank = combinationType switch
        {
            CombinationType.Linear when ranks.Distinct().Count() == 1 => ranks[0],
            CombinationType.Linear => throw new ArgumentException($"All adapters must have the same r for CombinationType.Linear (got {string.Join(", ", ranks)})."),
            CombinationType.Cat => ranks.Sum(),
            CombinationType.Svd => ranks.Max(),
            _ => throw new ArgumentOutOfRangeException(nameof(combinationType), combinationType, "combination type is not supported (Linear, Cat, Svd)."),
        };
        if (loras.Any(l => l.RankPattern.Count > 0 || l.AlphaPattern.Count > 0) && combinationType is not (CombinationType.Svd or CombinationType.Cat))
            throw new ArgumentException("AddWeightedAdapter with rank_pattern / alpha_pattern needs CombinationType.Cat or CombinationType.Svd.");
        TargetModules targets;
        if (loras.All(l => l.TargetModules!.Names is not null))
            targets = TargetModules.FromNames(loras.SelectMany(l => l.TargetModules!.Names!).Distinct());
        else if (loras.All(l => l.TargetModules!.Names is null))
            targets = TargetModules.FromPattern(string.Join("|", loras.Select(l => $"({l.TargetModules!.Pattern})")));
        else
            throw new ArgumentException("Cannot combine adapters whose target_modules mix lists and regex strings.");
        var newConfig = loras[0] with
        {
            R = newRank, LoraAlpha = newRank, TargetModules = targets, RankPattern = new Dictionary<string, int>(),
            AlphaPattern = new Dictionary<string, double>(), UseDora = false, InitLoraWeights = LoraInit.Default,
        };
        newConfig = (LoraConfig)InjectAndRegister(adapterName, newConfig);
        FreezeAdapter(adapterName);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var (path, layer) in TunerLayers())
        {
            if (layer is not LoraLinear target || !target.AdapterNames.Contains(adapterName)) continue;
            var newA = target.LoraA(adapterName).weight;
            var newB = target.LoraB(adapterName).weight;
            newA.zero_();
            newB.zero_();
            var present = adapters.Select((a, i) => (a, w: weights[i])).Where(x => target.AdapterNames.Contains(x.a)).ToList();
            if (present.Count == 0) continue;
            switch (combinationType)
            {
                case CombinationType.Linear:
                    foreach (var (a, w) in present)
                    {
                        newA.add_(target.LoraA(a).weight * HeldScalars.Of(Math.Sqrt(w)) * HeldScalars.Of(target.Scaling[a]), HeldScalars.One);
                        newB.add_(target.LoraB(a).weight * HeldScalars.Of(Math.Sqrt(w)), HeldScalars.One);
                    }
                    break;
                case CombinationType.Cat:
                {
                    var catA = cat(present.Select(x => target.LoraA(x.a).weight * HeldScalars.Of(x.w) * HeldScalars.Of(target.Scaling[x.a])).ToArray(), 0);
                    var catB = cat(present.Select(x => (Tensor)target.LoraB(x.a).weight).ToArray(), 1);
                    newA.narrow(0, 0, catA.shape[0]).copy_(catA);
                    newB.narrow(1, 0, catB.shape[1]).copy_(catB);
                    break;
                }
                case CombinationType.Svd:
                {
                    Tensor delta = zeros([target.OutFeatures, target.InFeatures], dtype: newA.dtype, device: newA.device);
                    foreach (var (a, w) in present)
                    {
                        var d = target.GetDeltaWeight(a);
                        delta = delta.add((target.FanInFanOut ? d.t() : d) * HeldScalars.Of(w), HeldScalars.One);
                    }
                    var (u, s, vh) = linalg.svd(delta, fullMatrices: false);
                    int k = (int)Math.Min(newRank, s.shape[0]);
                    var uk = u.narrow(1, 0, k).matmul(diag(s.narrow(0, 0, k)));
                    newA.narrow(0, 0, k).copy_(vh.narrow(0, 0, k));
                    newB.narrow(1, 0, k).copy_(uk);
                    break;
                }
            }
        }
        return newConfig;
    }
}
