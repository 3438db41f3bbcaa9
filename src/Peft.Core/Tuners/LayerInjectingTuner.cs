using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// A PEFT method that replaces target modules by tuner layers (PEFT <c>BaseTuner.inject_adapter</c>: LoRA, AdaLoRA,
/// IA3, bottleneck adapters). A method supplies the config defaults, the target match, the layer creation (usually an
/// ordered list of layer factories) and what trains; the injection loop, the "nothing matched" error and the freezing
/// of the base model are shared here.
/// </summary>
public abstract class LayerInjectingTuner : BaseTuner
{
    /// <summary>Wraps <paramref name="model"/> (registered as the child <c>model</c>).</summary>
    protected LayerInjectingTuner(string name, nn.Module model, ILogger? logger) : base(name, model, logger) { }

    /// <summary>Fills in defaults that depend on the model (target modules per model_type, "all-linear" expansion, ...) and validates.</summary>
    public abstract PeftConfig PrepareConfig(PeftConfig config);

    /// <summary>
    /// PEFT's basic target rule shared by the layer-injecting methods: the root (empty key) never matches, an
    /// <c>exclude_modules</c> match wins, else <paramref name="targets"/> decides.
    /// </summary>
    protected static bool IsTargetKey(TargetModules targets, TargetModules? exclude, string key) =>
        key.Length > 0 && !(exclude is { } ex && ex.Matches(key)) && targets.Matches(key);

    /// <summary><see cref="IsTarget"/> for a config with <c>target_modules</c> / <c>exclude_modules</c> (<see cref="IsTargetKey"/>).</summary>
    private protected static bool IsListedTarget(ITargetedConfig config, string key) => IsTargetKey(config.TargetModules!, config.ExcludeModules, key);

    /// <summary><see cref="DescribeTargets"/> for a config with <c>target_modules</c>.</summary>
    private protected static string DescribeListedTargets(ITargetedConfig config) => config.TargetModules?.ToString() ?? "(none)";

    /// <summary>Freezes every parameter outside the adapters (names without <see cref="BaseTuner.Prefix"/>), PEFT's <c>_mark_only_adapters_as_trainable</c> loop.</summary>
    private protected void FreezeAllButAdapters()
    {
        foreach (var (n, p) in Model.named_parameters())
        {
            if (!n.Contains(Prefix, StringComparison.Ordinal)) p.requires_grad = false;
        }
    }

    /// <summary>Whether the module at <paramref name="key"/> is a target of <paramref name="config"/>.</summary>
    protected abstract bool IsTarget(PeftConfig config, string key);

    /// <summary>Adds <paramref name="adapterName"/> to <paramref name="target"/>: updates a tuner layer, or replaces the module with a new one (<see cref="ModuleSurgery.ReplaceChild"/>).</summary>
    protected abstract void CreateOrUpdate(PeftConfig config, string adapterName, nn.Module target, string key, nn.Module parent, string childName);

    /// <summary>Makes only adapter parameters (and the method's extras, e.g. biases) trainable.</summary>
    protected abstract void MarkOnlyAdaptersTrainable(PeftConfig config);

    /// <summary>How the config names its targets, for error messages.</summary>
    protected abstract string DescribeTargets(PeftConfig config);

    /// <summary>
    /// PEFT <c>inject_adapter</c>: prepares the config, creates or updates a layer for every target, activates the
    /// adapter on the layers when it is active, and marks what trains. Throws listing module names when no target matches.
    /// </summary>
    protected override PeftConfig InjectAdapter(string adapterName, PeftConfig config)
    {
        config = PrepareConfig(config);
        var keys = OuterModuleKeys();
        int matched = 0;
        foreach (var key in keys)
        {
            if (!IsTarget(config, key)) continue;
            var (parent, childName, target) = ModuleSurgery.GetParent(Model, key);
            CreateOrUpdate(config, adapterName, target, key, parent, childName);
            matched++;
        }
        if (matched == 0)
        {
            var names = keys.Where(k => k.Length > 0).ToList();
            var leaves = names.Select(k => k[(k.LastIndexOf('.') + 1)..]).Where(n => !int.TryParse(n, out _)).Distinct().Take(30);
            throw new ArgumentException(
                $"Target modules {DescribeTargets(config)} not found in the base model ({Model.GetType().Name}). " +
                $"Module names that exist: {string.Join(", ", leaves)}{(names.Count > 30 ? ", ..." : "")}. Please check the target modules and try again.");
        }
        foreach (var (_, layer) in TunerLayers())
        {
            if (layer.AdapterNames.Contains(adapterName)) layer.SetAdapter(ActiveAdapters);
        }
        MarkOnlyAdaptersTrainable(config);
        return config;
    }

    /// <summary>
    /// PEFT's <c>_maybe_include_all_linear_layers</c>: the names of every Linear / GPT-2 Conv1D module for
    /// <c>target_modules="all-linear"</c>, leaving out a transformers model's <c>lm_head</c>, a plain SEQ_CLS module's
    /// classifier, and the modules trained in full (<paramref name="modulesToSave"/>). Throws when there is none.
    /// </summary>
    protected TargetModules ExpandAllLinear(TaskType? taskType, IReadOnlyList<string>? modulesToSave)
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
            if (Model is IPreTrainedModel && last == "lm_head") continue;
            if (Model is not IPreTrainedModel && taskType == TaskType.SeqCls && last is "classifier" or "score") continue;
            // Modules trained in full (modules_to_save, e.g. the classifier head) are not also adapted.
            if (modulesToSave?.Any(t => name == t || name.EndsWith("." + t, StringComparison.Ordinal)) == true) continue;
            names.Add(name);
        }
        if (names.Count == 0) throw new ArgumentException($"target_modules=\"all-linear\": {Model.GetType().Name} has no linear layers.");
        return TargetModules.FromNames(names);
    }

    /// <summary>
    /// PEFT's layer-index rule for <c>layers_to_transform</c>: the index is the number after <c>.&lt;pattern&gt;.</c>
    /// (any segment when no pattern), and the module must sit in one of the listed layers.
    /// </summary>
    public static bool InLayers(string key, IReadOnlyList<int>? layersToTransform, IReadOnlyList<string>? layersPattern)
    {
        if (layersToTransform is null || layersToTransform.Count == 0) return true;
        Match? m = null;
        if (layersPattern is null || layersPattern.Count == 0)
        {
            m = Regex.Match(key, @"^(?:.*\.)?[^.]*\.(\d+)\.");
        }
        else
        {
            foreach (var p in layersPattern)
            {
                m = Regex.Match(key, @"^(?:.*\.)?" + p + @"\.(\d+)\.");
                if (m.Success) break;
            }
        }
        if (m is null || !m.Success) return false;
        return layersToTransform.Contains(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
    }

    /// <summary>PEFT's <c>get_pattern_key</c>: the first pattern that equals the key, or matches it as <c>(.*\.)?pattern$</c>.</summary>
    public static string? PatternKey(IEnumerable<string> patterns, string key)
    {
        ArgumentNullException.ThrowIfNull(patterns);
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
}
