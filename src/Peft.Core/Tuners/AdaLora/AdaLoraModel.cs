using Microsoft.Extensions.Logging;
using Peft.Core.Tuners;
using TorchSharp;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// The AdaLoRA tuner (PEFT <c>AdaLoraModel(LoraModel)</c>): LoRA's target matching with <see cref="SvdLinear"/> /
/// <see cref="SvdConv2d"/> layers of rank <c>init_r</c>, the orthogonal regulariser as <see cref="LossTerm"/>, and the <see cref="RankAllocator"/>
/// driven by <see cref="UpdateAndAllocate"/> (called by the Trainer through <see cref="OnOptimizerStep"/>, or by hand).
/// Saving trims each module to its <c>rank_pattern</c> and writes the pattern into <c>adapter_config.json</c>; loading
/// an adapter with a pattern shrinks the modules first, as PEFT does. At most one adapter may be trainable.
/// </summary>
public class AdaLoraModel : LoraModel
{
    private RankAllocator? _allocator;

    /// <summary>Wraps <paramref name="model"/>; adapters are added with <see cref="BaseTuner.AddAdapter"/>.</summary>
    public AdaLoraModel(nn.Module model, ILogger? logger = null) : base("AdaLoraModel", model, logger) { }

    /// <summary>The adapter being trained (PEFT <c>trainable_adapter_name</c>), or null when all are in inference mode.</summary>
    public string? TrainableAdapterName { get; private set; }

    /// <summary>The rank allocator of the trainable adapter, or null.</summary>
    public RankAllocator? Allocator => _allocator;

    /// <summary>
    /// AdaLoRA's factories (PEFT <c>AdaLoraModel._create_new_module</c>): Conv2d as <see cref="SvdConv2d"/>; Conv1D
    /// (fan_in_fan_out forced on) and Linear / <see cref="IBaseLayerWeight"/> linears as <see cref="SvdLinear"/>.
    /// </summary>
    protected override IReadOnlyList<LoraLayerFactory> Dispatchers { get; } = [SvdConv2dFactory, SvdConv1D, SvdLinearFactory];

    private static LoraLayer? SvdConv2dFactory(LoraLayerRequest q) =>
        q.Target is TorchSharp.Modules.Conv2d c ? new SvdConv2d(c, q.AdapterName, q.R, q.Alpha, (AdaLoraConfig)q.Config) : null;

    private static LoraLayer? SvdConv1D(LoraLayerRequest q)
    {
        if (q.Target is not Peft.Core.Modules.Conv1D c) return null;
        if (!q.Config.FanInFanOut)
            q.Warn($"fan_in_fan_out is set to False but the target module '{q.Key}' is a Conv1D (weight [in, out]). Setting fan_in_fan_out to True for it.");
        return new SvdLinear(c, q.AdapterName, q.R, q.Alpha, (AdaLoraConfig)q.Config);
    }

    private static LoraLayer? SvdLinearFactory(LoraLayerRequest q)
    {
        if (q.Target is not (TorchSharp.Modules.Linear or IBaseLayerWeight) || q.Target is not nn.Module<Tensor, Tensor> m) return null;
        if (q.Config.FanInFanOut)
            q.Warn($"fan_in_fan_out is set to True but the target module '{q.Key}' is a Linear (weight [out, in]). Setting fan_in_fan_out to False for it.");
        return new SvdLinear(m, q.AdapterName, q.R, q.Alpha, (AdaLoraConfig)q.Config);
    }

    /// <inheritdoc />
    public override PeftConfig PrepareConfig(PeftConfig config)
    {
        if (config is not AdaLoraConfig)
            throw new ArgumentException($"AdaLoraModel needs an AdaLoraConfig, got {config.GetType().Name}.", nameof(config));
        return base.PrepareConfig(config);
    }

    /// <summary>Every module gets rank <c>init_r</c> (PEFT ignores <c>r</c> and <c>rank_pattern</c> here; a saved pattern is applied on load).</summary>
    protected override (int R, double Alpha) RankAndAlpha(LoraConfig config, string key) => (((AdaLoraConfig)config).InitR, config.LoraAlpha);

    /// <summary>Adds the adapter (only one may train: PEFT's check) and starts the rank allocator for a trainable one.</summary>
    protected override PeftConfig InjectAdapter(string adapterName, PeftConfig config)
    {
        if (!config.InferenceMode && TrainableAdapterName is not null)
            throw new ArgumentException(
                $"AdaLoraModel supports only 1 trainable adapter ('{TrainableAdapterName}' is). When using multiple adapters, set inference_mode to true for all adapters except the one you want to train.", nameof(config));
        config = base.InjectAdapter(adapterName, config);
        if (!config.InferenceMode)
        {
            TrainableAdapterName = adapterName;
            _allocator?.Dispose();
            _allocator = new RankAllocator((AdaLoraConfig)config, adapterName, SvdLayers);
        }
        return config;
    }

    private IReadOnlyList<(string Path, AdaLoraLayer Layer)> SvdLayers() =>
        TunerLayers().Where(l => l.Layer is AdaLoraLayer).Select(l => (l.Path, (AdaLoraLayer)l.Layer)).ToList();

    /// <inheritdoc />
    public override void DeleteAdapter(string adapterName)
    {
        base.DeleteAdapter(adapterName);
        if (adapterName == TrainableAdapterName)
        {
            TrainableAdapterName = null;
            _allocator?.Dispose();
            _allocator = null;
        }
    }

    /// <summary>AdaLoRA does not support weighted adapters (PEFT raises TypeError).</summary>
    public override PeftConfig AddWeightedAdapter(IReadOnlyList<string> adapters, IReadOnlyList<double> weights, string adapterName, CombinationType combinationType) =>
        throw new NotSupportedException($"{nameof(AdaLoraModel)} does not support AddWeightedAdapter; use LoRA instead.");

    /// <summary>
    /// The orthogonal regulariser of the trainable adapter, exactly PEFT <c>AdaLoraModel.forward</c>'s term:
    /// orth_reg_weight · mean over its lora_A and lora_B of ‖P·Pᵀ − I‖_F (A) and ‖Pᵀ·P − I‖_F (B). A differentiable
    /// scalar in the caller's scope; null when no adapter trains.
    /// </summary>
    public override Tensor? LossTerm()
    {
        if (TrainableAdapterName is not { } name) return null;
        var config = (AdaLoraConfig)PeftConfigs[name];
        if (config.OrthRegWeight < 0) throw new InvalidOperationException($"orth_reg_weight should be greater than or equal to 0, got {config.OrthRegWeight}.");
        Tensor? sum = null;
        int count = 0;
        foreach (var (_, layer) in SvdLayers())
        {
            if (!layer.AdapterNames.Contains(name)) continue;
            var a = layer.LoraA(name);
            var b = layer.LoraB(name);
            foreach (var cov in new[] { a.matmul(a.t()), b.t().matmul(b) }) // [r, r]
            {
                var eye = torch.eye(cov.shape[0], cov.shape[1], dtype: cov.dtype, device: cov.device);
                var norm = linalg.norm(cov - eye);
                sum = sum is null ? norm : sum.add(norm, HeldScalars.One);
                count++;
            }
        }
        return sum is null ? null : sum.div(HeldScalars.Of(count)).mul(HeldScalars.Of(config.OrthRegWeight));
    }

    /// <inheritdoc />
    public override void OnOptimizerStep(int globalStep) => UpdateAndAllocate(globalStep);

    /// <summary>
    /// Updates the importance scores and allocates the rank budget (PEFT <c>update_and_allocate(global_step)</c>); call
    /// it after <c>optimizer.step()</c> and before <c>zero_grad()</c> with the 0-based step. Before
    /// <c>total_step − tfinal</c>: scores and, on allocation steps, masks (the rank pattern goes into the config); at that
    /// step: the final allocation; afterwards: re-applies the final pattern every step.
    /// </summary>
    /// <exception cref="InvalidOperationException">No adapter is trainable, or the final phase has no rank pattern.</exception>
    public void UpdateAndAllocate(int globalStep)
    {
        var name = TrainableAdapterName ?? throw new InvalidOperationException("UpdateAndAllocate: no AdaLoRA adapter is trainable (all are in inference mode).");
        var allocator = _allocator!;
        var config = (AdaLoraConfig)PeftConfigs[name];
        int final = config.FinalStep;
        if (globalStep < final)
        {
            if (allocator.UpdateAndAllocate(globalStep) is { Count: > 0 } pattern) UpdateConfig(name, config with { RankPattern = pattern });
        }
        else if (globalStep == final)
        {
            var pattern = allocator.UpdateAndAllocate(globalStep, forceMask: true);
            UpdateConfig(name, config with { RankPattern = pattern });
            allocator.ResetScores();
        }
        else
        {
            allocator.MaskUsingRankPattern(config.RankPattern
                ?? throw new InvalidOperationException($"UpdateAndAllocate({globalStep}): past total_step - tfinal ({final}) but adapter '{name}' has no rank_pattern."));
        }
    }

    /// <summary>The adapter's tensors trimmed to its <c>rank_pattern</c> (PEFT <c>resize_state_dict_by_rank_pattern</c>); trimmed tensors are new, in the caller's scope.</summary>
    public override Dictionary<string, Tensor> GetAdapterStateDict(string adapterName)
    {
        var result = base.GetAdapterStateDict(adapterName);
        if (ConfigOf(adapterName) is not AdaLoraConfig { RankPattern: { } pattern }) return result;
        foreach (var (name, keep) in pattern)
        {
            var prefix = StateDictRoot + ModulePath(name, adapterName);
            int rank = keep.Count(k => k);
            var idx = tensor(keep.Select((k, i) => (k, i)).Where(p => p.k).Select(p => (long)p.i).ToArray(), dtype: ScalarType.Int64);
            foreach (var (factor, dim) in new[] { ("lora_E", 0L), ("lora_A", 0L), ("lora_B", 1L) })
            {
                var key = $"{prefix}.{factor}";
                if (!result.TryGetValue(key, out var t))
                    throw new InvalidOperationException($"AdaLoRA rank_pattern key '{name}' names no module with adapter '{adapterName}' ({key} not found).");
                if (t.shape[dim] != rank) result[key] = t.detach().index_select(dim, idx.to(t.device));
            }
        }
        return result;
    }

    /// <summary>Shrinks the modules to the config's <c>rank_pattern</c> first (PEFT <c>resize_modules_by_rank_pattern</c>), then loads strictly.</summary>
    public override void LoadAdapterStateDict(IReadOnlyDictionary<string, Tensor> tensors, string adapterName, string source)
    {
        if (ConfigOf(adapterName) is AdaLoraConfig { RankPattern: { } pattern } config)
        {
            var layers = SvdLayers().ToDictionary(l => l.Path, l => l.Layer, StringComparer.Ordinal);
            foreach (var (name, keep) in pattern)
            {
                var path = ModulePath(name, adapterName);
                if (!layers.TryGetValue(path, out var layer) || !layer.AdapterNames.Contains(adapterName))
                    throw new InvalidDataException($"{source}: rank_pattern key '{name}' names no AdaLoRA module with adapter '{adapterName}'.");
                layer.ResizeByRankPattern(adapterName, keep, config, name);
            }
            if (config.InferenceMode) FreezeAdapter(adapterName);
        }
        base.LoadAdapterStateDict(tensors, adapterName, source);
    }

    /// <summary>The module path of a rank_pattern key (<c>&lt;path&gt;.lora_E</c>, or with <c>.&lt;adapter&gt;</c> after it as PEFT keeps it in memory).</summary>
    private static string ModulePath(string key, string adapterName)
    {
        var parts = key.Split('.');
        int drop = parts.Length > 2 && parts[^1] == adapterName ? 2 : 1;
        return string.Join('.', parts[..^drop]);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _allocator?.Dispose();
            _allocator = null;
        }
        base.Dispose(disposing);
    }
}
