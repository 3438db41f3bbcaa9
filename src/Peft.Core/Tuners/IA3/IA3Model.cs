using Microsoft.Extensions.Logging;
using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>What an (IA)³ layer factory is asked to wrap (PEFT's arguments of <c>_create_new_module</c>).</summary>
/// <param name="Target">The module to adapt.</param>
/// <param name="Key">Its path in the model (for messages).</param>
/// <param name="AdapterName">The adapter to create.</param>
/// <param name="Config">The adapter's config.</param>
/// <param name="IsFeedforward">True when the module's input is scaled (it is in <c>feedforward_modules</c>).</param>
/// <param name="Warn">Records a warning on the tuner (fan_in_fan_out corrected).</param>
public sealed record IA3LayerRequest(nn.Module Target, string Key, string AdapterName, IA3Config Config, bool IsFeedforward, Action<string> Warn);

/// <summary>Creates the (IA)³ layer for a module, or returns null when it does not handle that module type.</summary>
public delegate IA3Layer? IA3LayerFactory(IA3LayerRequest request);

/// <summary>
/// The (IA)³ tuner (PEFT <c>IA3Model</c>): fills in PEFT's default target / feed-forward modules per
/// <c>model_type</c>, replaces every target with an <see cref="IA3Linear"/> / <see cref="IA3Conv2d"/> through the
/// ordered factory list <see cref="Dispatchers"/>, and trains only the <c>ia3_l</c> vectors (and modules_to_save).
/// Adapter file keys: <c>base_model.model.&lt;path&gt;.ia3_l</c>. Merging is supported (PEFT <c>merge_and_unload</c>);
/// mixed-adapter batches are not (PEFT supports <c>adapter_names</c> only for LoRA-family layers).
/// </summary>
public class IA3Model : LayerInjectingTuner, IWeightedAdapterTuner
{
    /// <summary>PEFT's <c>TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING</c>.</summary>
    public static IReadOnlyDictionary<string, string[]> DefaultTargetModules { get; } = new Dictionary<string, string[]>(StringComparer.Ordinal)
    {
        ["t5"] = ["k", "v", "wo"], ["mt5"] = ["k", "v", "wi_1"], ["gpt2"] = ["c_attn", "mlp.c_proj"],
        ["bloom"] = ["query_key_value", "mlp.dense_4h_to_h"], ["roberta"] = ["key", "value", "output.dense"],
        ["opt"] = ["q_proj", "k_proj", "fc2"], ["gptj"] = ["q_proj", "v_proj", "fc_out"],
        ["gpt_neox"] = ["query_key_value", "dense_4h_to_h"], ["gpt_neo"] = ["q_proj", "v_proj", "c_proj"],
        ["bart"] = ["q_proj", "v_proj", "fc2"], ["gpt_bigcode"] = ["c_attn", "mlp.c_proj"],
        ["llama"] = ["k_proj", "v_proj", "down_proj"], ["llama4"] = ["q_proj", "v_proj", "down_proj"],
        ["mistral"] = ["k_proj", "v_proj", "down_proj"], ["mixtral"] = ["k_proj", "v_proj", "w2"],
        ["bert"] = ["key", "value", "output.dense"], ["deberta-v2"] = ["key_proj", "value_proj", "output.dense"],
        ["deberta"] = ["in_proj", "output.dense"], ["RefinedWebModel"] = ["query_key_value", "dense_4h_to_h"],
        ["RefinedWeb"] = ["query_key_value", "dense_4h_to_h"], ["falcon"] = ["query_key_value", "dense_4h_to_h"],
        ["phi"] = ["q_proj", "v_proj", "fc2"], ["gemma"] = ["q_proj", "v_proj", "down_proj"],
        ["gemma2"] = ["q_proj", "v_proj", "down_proj"], ["gemma3_text"] = ["q_proj", "v_proj", "down_proj"],
        ["qwen2"] = ["q_proj", "v_proj", "down_proj"], ["qwen3"] = ["q_proj", "v_proj", "down_proj"],
    };

    /// <summary>PEFT's <c>TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING</c>.</summary>
    public static IReadOnlyDictionary<string, string[]> DefaultFeedforwardModules { get; } = new Dictionary<string, string[]>(StringComparer.Ordinal)
    {
        ["t5"] = ["wo"], ["mt5"] = [], ["gpt2"] = ["mlp.c_proj"], ["bloom"] = ["mlp.dense_4h_to_h"],
        ["roberta"] = ["output.dense"], ["opt"] = ["fc2"], ["gptj"] = ["fc_out"], ["gpt_neox"] = ["dense_4h_to_h"],
        ["gpt_neo"] = ["c_proj"], ["bart"] = ["fc2"], ["gpt_bigcode"] = ["mlp.c_proj"], ["llama"] = ["down_proj"],
        ["llama4"] = ["down_proj"], ["mistral"] = ["down_proj"], ["mixtral"] = ["w2"], ["bert"] = ["output.dense"],
        ["deberta-v2"] = ["output.dense"], ["deberta"] = ["output.dense"], ["RefinedWeb"] = ["dense_4h_to_h"],
        ["RefinedWebModel"] = ["dense_4h_to_h"], ["falcon"] = ["dense_4h_to_h"], ["phi"] = ["fc2"],
        ["gemma"] = ["down_proj"], ["gemma2"] = ["down_proj"], ["gemma3_text"] = ["down_proj"], ["qwen2"] = ["down_proj"],
        ["qwen3"] = ["down_proj"],
    };

    /// <summary>The built-in factories, in PEFT's order: Conv2d, GPT-2 Conv1D, Linear (and <see cref="IBaseLayerWeight"/> linears).</summary>
    public static IReadOnlyList<IA3LayerFactory> DefaultDispatchers { get; } = [Conv2dFactory, Conv1DFactory, LinearFactory];

    /// <summary>Wraps <paramref name="model"/>; adapters are added through <see cref="BaseTuner.AddAdapter"/>.</summary>
    public IA3Model(nn.Module model, ILogger? logger = null) : base("IA3Model", model, logger) { }

    /// <inheritdoc />
    public override string Prefix => "ia3_";

    /// <summary>The ordered layer factories (first non-null wins). Default: <see cref="DefaultDispatchers"/>.</summary>
    protected virtual IReadOnlyList<IA3LayerFactory> Dispatchers => DefaultDispatchers;

    private static IA3Config Cast(PeftConfig config) => config as IA3Config
        ?? throw new ArgumentException($"IA3Model needs an IA3Config, got {config?.GetType().Name ?? "null"}.", nameof(config));

    /// <summary>
    /// PEFT <c>_prepare_adapter_config</c>: validates (feed-forward ⊆ target, as PEFT's <c>__post_init__</c>), then fills
    /// target / feed-forward modules from the model type's defaults when null and expands "all-linear".
    /// </summary>
    public override PeftConfig PrepareConfig(PeftConfig config)
    {
        var ia3 = Cast(config);
        ia3.Validate();
        var type = (Model as IPreTrainedModel)?.ModelType;
        if (ia3.TargetModules is null)
        {
            if (type is null || !DefaultTargetModules.TryGetValue(type, out var targets))
                throw new ArgumentException($"Please specify target_modules in the IA3 config: there is no default for model type '{type ?? Model.GetType().Name}'.");
            ia3 = ia3 with { TargetModules = targets };
        }
        if (ia3.FeedforwardModules is null)
        {
            if (type is null || !DefaultFeedforwardModules.TryGetValue(type, out var ff))
                throw new ArgumentException($"Please specify feedforward_modules in the IA3 config: there is no default for model type '{type ?? Model.GetType().Name}'.");
            ia3 = ia3 with { FeedforwardModules = ff };
        }
        if (ia3.TargetModules.IsAllLinear) ia3 = ia3 with { TargetModules = ExpandAllLinear(ia3.TaskType, ia3.ModulesToSave) };
        return ia3;
    }

    /// <inheritdoc />
    protected override string DescribeTargets(PeftConfig config) => DescribeListedTargets(Cast(config));

    /// <inheritdoc />
    protected override bool IsTarget(PeftConfig config, string key) => IsListedTarget(Cast(config), key);

    /// <inheritdoc />
    protected override void CreateOrUpdate(PeftConfig config, string adapterName, nn.Module target, string key, nn.Module parent, string childName)
    {
        var ia3 = Cast(config);
        if (target is IA3Layer existing)
        {
            existing.UpdateLayer(adapterName, ia3);
            return;
        }
        var request = new IA3LayerRequest(target, key, adapterName, ia3, ia3.IsFeedforward(key), Warn);
        var created = Dispatchers.Select(f => f(request)).FirstOrDefault(l => l is not null)
            ?? throw new NotSupportedException(
                $"Target module '{key}' ({target.GetType().FullName}) is not supported by (IA)³. Supported: Linear, Conv2d, Peft.Core.Modules.Conv1D and IBaseLayerWeight linears.");
        ModuleSurgery.ReplaceChild(parent, childName, created);
    }

    /// <inheritdoc />
    protected override void MarkOnlyAdaptersTrainable(PeftConfig config) => FreezeAllButAdapters();

    /// <summary>PEFT's <c>nn.Conv2d</c> branch.</summary>
    public static IA3Layer? Conv2dFactory(IA3LayerRequest q)
    {
        ArgumentNullException.ThrowIfNull(q);
        return q.Target is Conv2d c ? new IA3Conv2d(c, q.AdapterName, q.Config, q.IsFeedforward) : null;
    }

    /// <summary>PEFT's GPT-2 <c>Conv1D</c> branch (weight [in, out]: fan_in_fan_out forced on, with a warning).</summary>
    public static IA3Layer? Conv1DFactory(IA3LayerRequest q)
    {
        ArgumentNullException.ThrowIfNull(q);
        if (q.Target is not Peft.Core.Modules.Conv1D c) return null;
        if (!q.Config.FanInFanOut)
            q.Warn($"fan_in_fan_out is set to False but the target module '{q.Key}' is a Conv1D (weight [in, out]). Setting fan_in_fan_out to True for it.");
        return new IA3Linear(c, q.AdapterName, q.Config, q.IsFeedforward);
    }

    /// <summary>PEFT's <c>nn.Linear</c> branch (fan_in_fan_out forced off, with a warning), also any <see cref="IBaseLayerWeight"/> linear.</summary>
    public static IA3Layer? LinearFactory(IA3LayerRequest q)
    {
        ArgumentNullException.ThrowIfNull(q);
        if (q.Target is not (Linear or IBaseLayerWeight) || q.Target is not nn.Module<Tensor, Tensor> m) return null;
        if (q.Config.FanInFanOut)
            q.Warn($"fan_in_fan_out is set to True but the target module '{q.Key}' is a Linear (weight [out, in]). Setting fan_in_fan_out to False for it.");
        return new IA3Linear(m, q.AdapterName, q.Config, q.IsFeedforward);
    }

    /// <summary>
    /// PEFT <c>IA3Model.add_weighted_adapter</c>: a new adapter whose vector in each layer is Σ wᵢ·ia3_lᵢ over the
    /// given adapters present there; targets and feed-forward modules are the union (lists) or the alternation (regexes).
    /// <paramref name="combinationType"/> must be <see cref="CombinationType.Linear"/> (the only combination PEFT defines for IA3).
    /// </summary>
    public PeftConfig AddWeightedAdapter(IReadOnlyList<string> adapters, IReadOnlyList<double> weights, string adapterName, CombinationType combinationType)
    {
        ArgumentNullException.ThrowIfNull(adapters);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentException.ThrowIfNullOrEmpty(adapterName);
        if (combinationType != CombinationType.Linear)
            throw new ArgumentException($"(IA)³ adapters combine linearly only; CombinationType.{combinationType} is not supported (use CombinationType.Linear).", nameof(combinationType));
        if (PeftConfigs.ContainsKey(adapterName)) throw new ArgumentException($"Adapter '{adapterName}' already exists.", nameof(adapterName));
        if (adapters.Count == 0 || adapters.Count != weights.Count)
            throw new ArgumentException($"AddWeightedAdapter needs one weight per adapter (got {adapters.Count} adapters, {weights.Count} weights).");
        var configs = adapters.Select(a => PeftConfigs.TryGetValue(a, out var c) ? Cast(c)
            : throw new ArgumentException($"Adapter '{a}' does not exist (have: {string.Join(", ", PeftConfigs.Keys)}).", nameof(adapters))).ToList();
        var newConfig = configs[0] with
        {
            TargetModules = Combine(configs.Select(c => c.TargetModules!).ToList(), "target_modules"),
            FeedforwardModules = Combine(configs.Select(c => c.FeedforwardModules!).ToList(), "feedforward_modules"),
        };
        newConfig = (IA3Config)InjectAndRegister(adapterName, newConfig);
        FreezeAdapter(adapterName);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var (_, layer) in TunerLayers())
        {
            if (layer is not IA3Layer target || !target.AdapterNames.Contains(adapterName)) continue;
            var vector = target.Vector(adapterName);
            vector.zero_();
            for (int i = 0; i < adapters.Count; i++)
            {
                if (target.AdapterNames.Contains(adapters[i])) vector.add_(target.Vector(adapters[i]) * HeldScalars.Of(weights[i]), HeldScalars.One);
            }
        }
        return newConfig;
    }

    private static TargetModules Combine(IReadOnlyList<TargetModules> parts, string field)
    {
        if (parts.All(p => p.Names is not null)) return TargetModules.FromNames(parts.SelectMany(p => p.Names!).Distinct());
        if (parts.All(p => p.Names is null)) return TargetModules.FromPattern(string.Join("|", parts.Select(p => $"({p.Pattern})")));
        throw new ArgumentException($"All adapter configs should have the same type for {field} (lists or regexes).");
    }
}
