using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core;

/// <summary>
/// The LoRA tuner (PEFT <c>LoraModel</c>): finds the target modules, replaces them with <see cref="LoraLinear"/> /
/// <see cref="LoraEmbedding"/>, and reads and writes PEFT's adapter-file layout
/// (<c>base_model.model.&lt;path&gt;.lora_A.weight</c>, ...).
/// </summary>
public sealed class LoraModel : BaseTuner
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
    public LoraModel(nn.Module model, ILogger? logger = null) : base("LoraModel", model, logger) { }

    /// <inheritdoc />
    public override string Prefix => "lora_";

    /// <inheritdoc />
    public override PeftConfig PrepareConfig(PeftConfig config)
    {
        var lora = (LoraConfig)config;
        lora.Validate();
        if (lora.TargetModules is null)
        {
            var type = (Model as IPretrainedModel)?.ModelType;
            if (type is null || !DefaultTargetModules.TryGetValue(type, out var defaults))
                throw new ArgumentException($"Please specify target_modules in the LoRA config: there is no default for model type '{type ?? Model.GetType().Name}'.");
            lora = lora with { TargetModules = defaults };
        }
        if (lora.TargetModules.IsAllLinear) lora = lora with { TargetModules = ExpandAllLinear(lora) };
        return lora;
    }

    private TargetModules ExpandAllLinear(LoraConfig config)
    {
        var names = new List<string>();
        var inner = new List<string>();
        foreach (var (name, m) in Model.named_modules())
        {
            if (inner.Any(p => name.StartsWith(p, StringComparison.Ordinal))) continue; // inside an adapter layer or wrapper
            if (m is ITunerLayer or ModulesToSaveWrapper) inner.Add(name + ".");
            bool linear = m is Linear or Peft.Core.Modules.Conv1D || m is ITunerLayer { BaseLayer: Linear or Peft.Core.Modules.Conv1D };
            if (!linear) continue;
            var last = name[(name.LastIndexOf('.') + 1)..];
            // PEFT leaves out the output embedding of a transformers model, and the classifier of a SEQ_CLS plain module.
            if (Model is IPretrainedModel && last == "lm_head") continue;
            if (Model is not IPretrainedModel && config.TaskType == TaskType.SeqCls && last is "classifier" or "score") continue;
            // Modules trained in full (modules_to_save, e.g. the classifier head) are not also given LoRA.
            if (config.ModulesToSave?.Any(t => name == t || name.EndsWith("." + t, StringComparison.Ordinal)) == true) continue;
            names.Add(name);
        }
        if (names.Count == 0) throw new ArgumentException($"target_modules=\"all-linear\": {Model.GetType().Name} has no linear layers.");
        return TargetModules.FromNames(names);
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

    /// <summary>PEFT's <c>get_pattern_key</c>: the first pattern that equals the key, or matches it as <c>(.*\.)?pattern$</c>.</summary>
    private static string? PatternKey(IEnumerable<string> patterns, string key)
    {
        foreach (var p in patterns)
        {
            if (p == key) return p;
        }
        foreach (var p in patterns)
        {
            if (Regex.IsMatch(key, @"^(.*\.)?(?:" + p + ")$")) return p;
        }
        return null;
    }

    /// <inheritdoc />
    protected override void CreateOrUpdate(PeftConfig config, string adapterName, nn.Module target, string key, nn.Module parent, string childName)
    {
        var lora = (LoraConfig)config;
        int r = PatternKey(lora.RankPattern.Keys, key) is { } rk ? lora.RankPattern[rk] : lora.R;
        double alpha = PatternKey(lora.AlphaPattern.Keys, key) is { } ak ? lora.AlphaPattern[ak] : lora.LoraAlpha;
        if (target is LoraLayer existing)
        {
            existing.UpdateLayer(adapterName, r, alpha, lora);
            return;
        }
        LoraLayer created;
        switch (target)
        {
            case Linear linear:
                if (lora.FanInFanOut)
                    Warn($"fan_in_fan_out is set to True but the target module '{key}' is a Linear (weight [out, in]). Setting fan_in_fan_out to False for it.");
                created = new LoraLinear(linear, adapterName, r, alpha, lora);
                break;
            case Peft.Core.Modules.Conv1D conv1d:
                if (!lora.FanInFanOut)
                    Warn($"fan_in_fan_out is set to False but the target module '{key}' is a Conv1D (weight [in, out]). Setting fan_in_fan_out to True for it.");
                created = new LoraLinear(conv1d, adapterName, r, alpha, lora);
                break;
            case Embedding embedding:
                created = new LoraEmbedding(embedding, adapterName, r, alpha, lora);
                break;
            case Conv2d conv2d:
                created = new LoraConv2d(conv2d, adapterName, r, alpha, lora);
                break;
            default:
                throw new NotSupportedException(
                    $"Target module '{key}' ({target.GetType().FullName}) is not supported. LoRA supports Linear, Embedding, Conv2d and Peft.Core.Modules.Conv1D.");
        }
        ModuleSurgery.ReplaceChild(parent, childName, created);
    }

    /// <inheritdoc />
    protected override void MarkOnlyAdaptersTrainable(PeftConfig config)
    {
        var lora = (LoraConfig)config;
        foreach (var (n, p) in Model.named_parameters())
        {
            if (!n.Contains(Prefix, StringComparison.Ordinal)) p.requires_grad = false;
        }
        switch (lora.Bias)
        {
            case "all":
                foreach (var (n, p) in Model.named_parameters())
                {
                    if (n.Contains("bias", StringComparison.Ordinal)) p.requires_grad = true;
                }
                break;
            case "lora_only":
                foreach (var (_, layer) in TunerLayers())
                {
                    if (layer is LoraLayer { BaseBias: { } b }) b.requires_grad = true;
                }
                break;
        }
    }

    /// <inheritdoc />
    public override Dictionary<string, Tensor> GetAdapterStateDict(string adapterName, PeftConfig config)
    {
        var lora = (LoraConfig)config;
        const string root = "base_model.model.";
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (path, layer) in TunerLayers())
        {
            if (!layer.AdapterNames.Contains(adapterName)) continue;
            foreach (var (name, value) in layer.AdapterTensors(adapterName)) result[$"{root}{path}.{name}"] = value;
            if (lora.Bias == "lora_only" && layer is LoraLayer { BaseBias: { } b }) result[$"{root}{path}.base_layer.bias"] = b;
        }
        if (lora.Bias == "all")
        {
            foreach (var (n, p) in Model.named_parameters())
            {
                if (!n.Contains("bias", StringComparison.Ordinal) || n.Contains(Prefix, StringComparison.Ordinal)) continue;
                if (n.Contains(".modules_to_save.", StringComparison.Ordinal) || n.Contains(".original_module.", StringComparison.Ordinal)) continue;
                result[root + n] = p;
            }
        }
        foreach (var (path, w) in ModulesToSaveWrappers())
        {
            if (!w.Has(adapterName)) continue;
            foreach (var (name, value) in w.AdapterTensors(adapterName)) result[$"{root}{path}.{name}"] = value;
        }
        return result;
    }

    /// <inheritdoc />
    public override void LoadAdapterStateDict(IReadOnlyDictionary<string, Tensor> tensors, string adapterName, PeftConfig config, string source)
    {
        const string root = "base_model.model.";
        var targets = new Dictionary<string, Action<Tensor, string>>(StringComparer.Ordinal);
        var required = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (path, layer) in TunerLayers())
        {
            if (!layer.AdapterNames.Contains(adapterName)) continue;
            foreach (var (name, _) in layer.AdapterTensors(adapterName))
            {
                var key = $"{root}{path}.{name}";
                targets[key] = (t, k) => layer.LoadAdapterTensor(adapterName, name, t, k);
                required.Add(key);
            }
        }
        foreach (var (n, p) in Model.named_parameters())
        {
            if (!n.EndsWith("bias", StringComparison.Ordinal) || n.Contains(Prefix, StringComparison.Ordinal)) continue;
            if (n.Contains(".modules_to_save.", StringComparison.Ordinal) || n.Contains(".original_module.", StringComparison.Ordinal)) continue;
            targets.TryAdd(root + n, (t, k) => CopyInto(p, t, k));
        }
        foreach (var (path, w) in ModulesToSaveWrappers())
        {
            if (!w.Has(adapterName)) continue;
            foreach (var (name, value) in w.AdapterTensors(adapterName))
            {
                var key = $"{root}{path}.{name}";
                targets[key] = (t, k) => CopyInto(value, t, k);
                required.Add(key);
                // PEFT's bias="all" files also carry the wrapper's own bias keys; accept them (the copy's value is the same tensor).
                if (name.EndsWith("bias", StringComparison.Ordinal))
                {
                    targets[$"{root}{path}.modules_to_save.{name}"] = (t, k) => CopyInto(value, t, k);
                    var original = w.OriginalModule.state_dict()[name];
                    targets[$"{root}{path}.original_module.{name}"] = (t, k) => CopyInto(original, t, k);
                }
            }
        }
        foreach (var (key, value) in tensors)
        {
            if (!targets.TryGetValue(key, out var load))
            {
                var expected = required.Take(6);
                throw new InvalidDataException(
                    $"{source}: tensor '{key}' does not fit the model's adapter '{adapterName}' (no such LoRA layer, bias or module to save). " +
                    $"Expected keys like: {string.Join(", ", expected)}{(required.Count > 6 ? ", ..." : "")}.");
            }
            load(value, key);
            required.Remove(key);
        }
        if (required.Count > 0)
            throw new InvalidDataException($"{source}: missing adapter tensors for adapter '{adapterName}': {string.Join(", ", required.Take(10))}{(required.Count > 10 ? ", ..." : "")}.");
    }

    private static void CopyInto(Tensor target, Tensor value, string key)
    {
        if (!target.shape.SequenceEqual(value.shape))
            throw new InvalidDataException($"adapter tensor '{key}': shape [{string.Join(", ", value.shape)}] in the file does not fit the model's [{string.Join(", ", target.shape)}].");
        using var _ = no_grad();
        target.copy_(value.to(target.dtype, target.device));
    }

    /// <summary>
    /// Builds adapter <paramref name="adapterName"/> from existing ones (PEFT <c>add_weighted_adapter</c>): "linear"
    /// (same rank; A = Σ √w·s·A_i, B = Σ √w·B_i), "cat" (rank Σ r_i; A, B concatenated) or "svd" (rank max r_i; truncated
    /// SVD of Σ w·ΔW_i). The new adapter has alpha = rank.
    /// </summary>
    public LoraConfig AddWeightedAdapter(IReadOnlyDictionary<string, PeftConfig> configs, IReadOnlyList<string> adapters, IReadOnlyList<double> weights,
        string adapterName, string combinationType, IReadOnlyList<string> activeAdapters)
    {
        if (adapters.Count == 0 || adapters.Count != weights.Count)
            throw new ArgumentException($"AddWeightedAdapter needs one weight per adapter (got {adapters.Count} adapters, {weights.Count} weights).");
        var loras = adapters.Select(a => configs.TryGetValue(a, out var c) && c is LoraConfig l ? l
            : throw new ArgumentException($"Adapter '{a}' does not exist or is not a LoRA adapter.")).ToList();
        var ranks = loras.Select(l => l.R).ToList();
        int newRank = combinationType switch
        {
            "linear" when ranks.Distinct().Count() == 1 => ranks[0],
            "linear" => throw new ArgumentException($"All adapters must have the same r for combination_type \"linear\" (got {string.Join(", ", ranks)})."),
            "cat" => ranks.Sum(),
            "svd" => ranks.Max(),
            _ => throw new ArgumentException($"combination_type \"{combinationType}\" is not supported (linear, cat, svd)."),
        };
        if (loras.Any(l => l.RankPattern.Count > 0 || l.AlphaPattern.Count > 0) && combinationType != "svd" && combinationType != "cat")
            throw new ArgumentException("AddWeightedAdapter with rank_pattern / alpha_pattern needs combination_type \"cat\" or \"svd\".");
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
        newConfig = (LoraConfig)InjectAdapter(adapterName, newConfig, activeAdapters);
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
                case "linear":
                    foreach (var (a, w) in present)
                    {
                        newA.add_(target.LoraA(a).weight * Math.Sqrt(w) * target.Scaling[a]);
                        newB.add_(target.LoraB(a).weight * Math.Sqrt(w));
                    }
                    break;
                case "cat":
                {
                    var catA = cat(present.Select(x => target.LoraA(x.a).weight * x.w * target.Scaling[x.a]).ToArray(), 0);
                    var catB = cat(present.Select(x => (Tensor)target.LoraB(x.a).weight).ToArray(), 1);
                    newA.narrow(0, 0, catA.shape[0]).copy_(catA);
                    newB.narrow(1, 0, catB.shape[1]).copy_(catB);
                    break;
                }
                case "svd":
                {
                    Tensor delta = zeros([target.OutFeatures, target.InFeatures], dtype: newA.dtype, device: newA.device);
                    foreach (var (a, w) in present)
                    {
                        var d = target.GetDeltaWeight(a);
                        delta = delta + (target.FanInFanOut ? d.t() : d) * w;
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
