using Microsoft.Extensions.Logging;
using Peft.Core.Tuners;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// The bottleneck adapter tuner (<c>peft_type</c> "BOTTLENECK"; Houlsby / Pfeiffer adapters; PEFT has no such method):
/// resolves the target projections (config, or the model type's defaults for the placement), replaces each with a
/// <see cref="BottleneckAdapterLayer"/>, and trains only <c>adapter_down</c> / <c>adapter_up</c> (and modules_to_save).
/// Adapters are non-linear, so they cannot be merged: <see cref="SupportsMerge"/> is false and
/// <c>MergeAndUnload</c> / <c>MergeAdapter</c> throw; <c>Unload</c> and <c>DisableAdapter</c> work.
/// </summary>
public sealed class BottleneckModel : LayerInjectingTuner
{
    /// <summary>
    /// Default targets per <c>model_type</c>: (attention output projection, feed-forward output projection), as full-match
    /// regexes. Houlsby uses both, Pfeiffer the feed-forward one.
    /// </summary>
    public static IReadOnlyDictionary<string, (string Attention, string FeedForward)> DefaultPlacements { get; } =
        new Dictionary<string, (string, string)>(StringComparer.Ordinal)
        {
            ["opt"] = (@".*\.self_attn\.out_proj", @".*\.fc2"),
            ["bart"] = (@".*\.self_attn\.out_proj", @".*\.fc2"),
            ["gpt2"] = (@".*\.attn\.c_proj", @".*\.mlp\.c_proj"),
            ["llama"] = (@".*\.self_attn\.o_proj", @".*\.mlp\.down_proj"),
            ["mistral"] = (@".*\.self_attn\.o_proj", @".*\.mlp\.down_proj"),
            ["qwen2"] = (@".*\.self_attn\.o_proj", @".*\.mlp\.down_proj"),
            ["qwen3"] = (@".*\.self_attn\.o_proj", @".*\.mlp\.down_proj"),
            ["gemma"] = (@".*\.self_attn\.o_proj", @".*\.mlp\.down_proj"),
            ["gemma2"] = (@".*\.self_attn\.o_proj", @".*\.mlp\.down_proj"),
            ["bert"] = (@".*\.attention\.output\.dense", @".*\.layer\.\d+\.output\.dense"),
            ["roberta"] = (@".*\.attention\.output\.dense", @".*\.layer\.\d+\.output\.dense"),
        };

    /// <summary>Wraps <paramref name="model"/>; adapters are added through <see cref="BaseTuner.AddAdapter"/>.</summary>
    public BottleneckModel(nn.Module model, ILogger? logger = null) : base("BottleneckModel", model, logger) { }

    /// <inheritdoc />
    public override string Prefix => "adapter_";

    /// <summary>False: a residual MLP with a non-linearity cannot be folded into the base weight.</summary>
    public override bool SupportsMerge => false;

    private static AdapterConfig Cast(PeftConfig config) => config as AdapterConfig
        ?? throw new ArgumentException($"BottleneckModel needs an AdapterConfig, got {config?.GetType().Name ?? "null"}.", nameof(config));

    /// <summary>Validates, then fills <c>target_modules</c> from <see cref="DefaultPlacements"/> and the placement when null.</summary>
    public override PeftConfig PrepareConfig(PeftConfig config)
    {
        var adapter = Cast(config);
        adapter.Validate();
        if (adapter.TargetModules is not null) return adapter;
        var type = (Model as IPreTrainedModel)?.ModelType;
        if (type is null || !DefaultPlacements.TryGetValue(type, out var p))
            throw new ArgumentException(
                $"Please specify target_modules in the bottleneck adapter config: there is no default placement for model type '{type ?? Model.GetType().Name}' " +
                $"(defaults exist for {string.Join(", ", DefaultPlacements.Keys)}).");
        return adapter with { TargetModules = adapter.Placement == BottleneckPlacement.Houlsby ? $"{p.Attention}|{p.FeedForward}" : p.FeedForward };
    }

    /// <inheritdoc />
    protected override string DescribeTargets(PeftConfig config) => DescribeListedTargets(Cast(config));

    /// <inheritdoc />
    protected override bool IsTarget(PeftConfig config, string key) => IsListedTarget(Cast(config), key);

    /// <inheritdoc />
    protected override void CreateOrUpdate(PeftConfig config, string adapterName, nn.Module target, string key, nn.Module parent, string childName)
    {
        var adapter = Cast(config);
        if (target is BottleneckAdapterLayer existing)
        {
            existing.UpdateLayer(adapterName, adapter);
            return;
        }
        if (target is not (Linear or Peft.Core.Modules.Conv1D or IBaseLayerWeight) || target is not nn.Module<Tensor, Tensor> m)
            throw new NotSupportedException(
                $"Target module '{key}' ({target.GetType().FullName}) is not supported by bottleneck adapters. Supported: Linear, Peft.Core.Modules.Conv1D and IBaseLayerWeight linears.");
        ModuleSurgery.ReplaceChild(parent, childName, new BottleneckAdapterLayer(m, adapterName, adapter));
    }

    /// <inheritdoc />
    protected override void MarkOnlyAdaptersTrainable(PeftConfig config) => FreezeAllButAdapters();
}
