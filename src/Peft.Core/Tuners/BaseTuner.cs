using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// The method-neutral core of a PEFT method (PEFT <c>BaseTuner</c> plus the prompt-learning parts of
/// <c>PeftModel</c>). It holds the user's model as its child <c>model</c> (so a <see cref="PeftModel"/>'s state-dict
/// keys are <c>base_model.model.&lt;path&gt;</c> as in PEFT), OWNS the adapter configs (PEFT <c>peft_config</c>) and the
/// active adapters, and does what every method shares: adding / switching / deleting adapters, modules_to_save,
/// merge / unload over the tuner layers, the adapter state dict (save and strict load), mixed-adapter batches, and the
/// seams a method overrides: <see cref="PrepareInput"/> (transform the model inputs), <see cref="PrepareInputsForGeneration"/>
/// (per decoding step), <see cref="LossTerm"/> / <see cref="OnOptimizerStep"/> (training hooks).
/// </summary>
/// <remarks>
/// Two kinds derive from it: <see cref="LayerInjectingTuner"/> (LoRA, AdaLoRA, IA3, bottleneck adapters: replaces
/// target modules by <see cref="ITunerLayer"/>s) and <see cref="PromptLearningTuner"/> (prompt / prefix / P-tuning:
/// injects nothing and changes the inputs instead). The model is changed in place.
/// </remarks>
public abstract partial class BaseTuner : nn.Module
{
    private readonly nn.Module model;
    private readonly List<string> _warnings = new();
    private readonly Dictionary<string, PeftConfig> _configs = new(StringComparer.Ordinal);
    private List<string> _active = new();

    /// <summary>Wraps <paramref name="model"/> (registered as the child <c>model</c>).</summary>
    protected BaseTuner(string name, nn.Module model, ILogger? logger) : base(name)
    {
        ArgumentNullException.ThrowIfNull(model);
        this.model = model;
        Logger = logger ?? NullLogger.Instance;
        RegisterComponents();
    }

    /// <summary>The wrapped model (changed in place).</summary>
    public nn.Module Model => model;

    /// <summary>Where warnings go (e.g. fan_in_fan_out corrected for Conv1D).</summary>
    protected ILogger Logger { get; }

    /// <summary>Warnings issued so far (also sent to the logger).</summary>
    public IReadOnlyList<string> Warnings => _warnings;

    /// <summary>The substring that marks this method's parameters (PEFT <c>prefix</c>, e.g. "lora_").</summary>
    public abstract string Prefix { get; }

    /// <summary>The configs of all adapters, by name, in the order they were added (PEFT <c>peft_config</c>).</summary>
    public IReadOnlyDictionary<string, PeftConfig> PeftConfigs => _configs;

    /// <summary>The active adapters (PEFT <c>active_adapters</c>).</summary>
    public IReadOnlyList<string> ActiveAdapters => _active;

    /// <summary>The first active adapter (PEFT <c>active_adapter</c>); throws when there is none.</summary>
    public string ActiveAdapter => _active.Count > 0 ? _active[0] : throw new InvalidOperationException("No adapter is active.");

    /// <summary>The first active adapter's config (PEFT <c>active_peft_config</c>).</summary>
    public PeftConfig ActivePeftConfig => _configs[ActiveAdapter];

    /// <summary>Whether adapters of this method can be folded into the base weights (false for prompt learning).</summary>
    public virtual bool SupportsMerge => true;

    /// <summary>Records and logs a warning.</summary>
    protected void Warn(string message)
    {
        _warnings.Add(message);
        Logger.LogWarning("{Message}", message);
    }

    /// <summary>
    /// Adds adapter <paramref name="adapterName"/> (PEFT <c>add_adapter</c> / <c>inject_adapter</c>): fills in
    /// <c>base_model_name_or_path</c> and the task's heads in <c>modules_to_save</c> (<c>classifier</c>, <c>score</c> for
    /// SEQ_CLS / TOKEN_CLS, <c>qa_outputs</c> for QUESTION_ANS), lets the method inject it, freezes it with
    /// <c>inference_mode</c>, and stores the config as used. The first adapter added becomes active; later ones do not.
    /// </summary>
    /// <param name="adapterName">The new adapter's name.</param>
    /// <param name="config">Its config.</param>
    /// <param name="autocastAdapterDtype">
    /// PEFT <c>autocast_adapter_dtype</c> (default true): float16 / bfloat16 adapter weights become float32 after
    /// injection (<see cref="CastAdapterDtype"/>); false keeps them in the base weights' dtype.
    /// </param>
    /// <returns>The config as stored (defaults filled in).</returns>
    /// <exception cref="ArgumentException">The name exists, the method differs from the existing adapters', or the config is invalid.</exception>
    public PeftConfig AddAdapter(string adapterName, PeftConfig config, bool autocastAdapterDtype = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(adapterName);
        ArgumentNullException.ThrowIfNull(config);
        if (_configs.ContainsKey(adapterName)) throw new ArgumentException($"Adapter '{adapterName}' already exists.", nameof(adapterName));
        if (_configs.Count > 0 && config.PeftType != _configs.Values.First().PeftType)
            throw new ArgumentException($"Cannot add a {config.PeftType} adapter to a model with {_configs.Values.First().PeftType} adapters.", nameof(config));
        if (config.BaseModelNameOrPath is null && model is IPreTrainedModel pre) config = config with { BaseModelNameOrPath = pre.NameOrPath };
        var heads = config.TaskType switch
        {
            TaskType.SeqCls or TaskType.TokenCls => new[] { "classifier", "score" },
            TaskType.QuestionAns => new[] { "qa_outputs" },
            _ => [],
        };
        if (heads.Length > 0)
        {
            var list = config.ModulesToSaveNames?.ToList() ?? [];
            foreach (var h in heads) if (!list.Contains(h)) list.Add(h);
            config = config.WithModulesToSave(list);
        }
        config = InjectAndRegister(adapterName, config);
        CastAdapterDtype(adapterName, autocastAdapterDtype);
        SetModulesToSave(adapterName, config.ModulesToSaveNames, active: _active.Contains(adapterName), trainable: !config.InferenceMode);
        return config;
    }

    /// <summary>
    /// Injects <paramref name="adapterName"/> (<see cref="InjectAdapter"/>), freezes it when the config says
    /// <c>inference_mode</c>, and stores the config — without modules_to_save (weighted adapters use this).
    /// </summary>
    protected PeftConfig InjectAndRegister(string adapterName, PeftConfig config)
    {
        bool first = _configs.Count == 0;
        if (first) _active = [adapterName];
        try
        {
            config = InjectAdapter(adapterName, config);
        }
        catch
        {
            if (first) _active = [];
            throw;
        }
        _configs[adapterName] = config;
        if (config.InferenceMode) FreezeAdapter(adapterName);
        return config;
    }

    /// <summary>
    /// The method's part of adding an adapter: create its layers / modules for <paramref name="adapterName"/> (active
    /// when it is in <see cref="ActiveAdapters"/>) and set what trains. Returns the config as used (defaults filled in).
    /// </summary>
    protected abstract PeftConfig InjectAdapter(string adapterName, PeftConfig config);

    /// <summary>
    /// PEFT <c>_cast_adapter_dtype</c>: when <paramref name="autocastAdapterDtype"/> is set, every tuner layer's
    /// float16 / bfloat16 parameters and buffers of <paramref name="adapterName"/> become float32
    /// (<see cref="BaseTunerLayer.CastAdapterDtype"/>); modules_to_save copies are left alone. A method whose adapter
    /// state is a copy of base-model modules (PEFT's LN tuning) overrides this to do nothing.
    /// </summary>
    protected virtual void CastAdapterDtype(string adapterName, bool autocastAdapterDtype)
    {
        if (!autocastAdapterDtype) return;
        foreach (var (_, layer) in TunerLayers())
        {
            if (layer is BaseTunerLayer b) b.CastAdapterDtype(adapterName);
        }
    }

    /// <summary>Every tuner layer with its path in <see cref="Model"/>.</summary>
    public IEnumerable<(string Path, ITunerLayer Layer)> TunerLayers() =>
        model.named_modules().Where(m => m.module is ITunerLayer).Select(m => (m.name, (ITunerLayer)m.module)).ToList();

    /// <summary>Every modules_to_save wrapper with its path in <see cref="Model"/>.</summary>
    public IEnumerable<(string Path, ModulesToSaveWrapper Wrapper)> ModulesToSaveWrappers() =>
        model.named_modules().Where(m => m.module is ModulesToSaveWrapper).Select(m => (m.name, (ModulesToSaveWrapper)m.module)).ToList();

    /// <summary>Module paths of <see cref="Model"/> outside tuner layers and wrappers (candidates for injection).</summary>
    protected List<string> OuterModuleKeys()
    {
        var inner = new List<string>();
        foreach (var (path, m) in model.named_modules())
        {
            if (m is ITunerLayer or ModulesToSaveWrapper) inner.Add(path + ".");
        }
        return model.named_modules().Select(m => m.name).Where(k => !inner.Any(p => k.StartsWith(p, StringComparison.Ordinal))).ToList();
    }

    /// <summary>Sets requires_grad = false on every parameter of <paramref name="adapterName"/> (a segment of its name).</summary>
    public void FreezeAdapter(string adapterName)
    {
        foreach (var (n, p) in named_parameters())
        {
            if (HasSegment(n, adapterName)) p.requires_grad = false;
        }
    }

    /// <summary>True when the dotted <paramref name="name"/> has a segment equal to <paramref name="segment"/>.</summary>
    protected static bool HasSegment(string name, string segment) => ("." + name + ".").Contains("." + segment + ".", StringComparison.Ordinal);

    /// <summary>
    /// Wraps each module listed in <paramref name="modulesToSave"/> (exact name or <c>.name</c> suffix) in a
    /// <see cref="ModulesToSaveWrapper"/> with a trainable copy for <paramref name="adapterName"/> (PEFT <c>_set_trainable</c>).
    /// </summary>
    public void SetModulesToSave(string adapterName, IReadOnlyList<string>? modulesToSave, bool active, bool trainable)
    {
        if (modulesToSave is null || modulesToSave.Count == 0) return;
        foreach (var key in OuterModuleKeys())
        {
            if (!modulesToSave.Any(t => key == t || key.EndsWith("." + t, StringComparison.Ordinal))) continue;
            var (parent, childName, target) = ModuleSurgery.GetParent(model, key);
            if (target is ModulesToSaveWrapper w)
            {
                w.Update(adapterName);
                if (active) w.SetAdapter(adapterName, trainable);
                continue;
            }
            if (target is not nn.Module<Tensor, Tensor> typed)
                throw new NotSupportedException($"modules_to_save: '{key}' is a {target.GetType().Name}, not a Module<Tensor, Tensor>.");
            var wrapper = new ModulesToSaveWrapper(typed, adapterName);
            ModuleSurgery.ReplaceChild(parent, childName, wrapper);
            if (active) wrapper.SetAdapter(adapterName, trainable);
            else wrapper.ClearActive();
        }
    }

    /// <summary>
    /// Makes <paramref name="adapterNames"/> the active adapters of the tuner, every layer and every wrapper (PEFT
    /// <c>set_adapter</c>); their parameters train when <paramref name="trainable"/>. Merged layers are unmerged first.
    /// </summary>
    public virtual void SetAdapter(IReadOnlyList<string> adapterNames, bool trainable = true)
    {
        ArgumentNullException.ThrowIfNull(adapterNames);
        foreach (var n in adapterNames)
        {
            if (!_configs.ContainsKey(n)) throw new ArgumentException($"Adapter '{n}' not found (have: {string.Join(", ", _configs.Keys)}).", nameof(adapterNames));
        }
        foreach (var (_, layer) in TunerLayers())
        {
            if (layer.MergedAdapters.Count > 0)
            {
                Warn("Adapter cannot be set when the model is merged. Unmerging the model first.");
                layer.Unmerge();
            }
            layer.SetAdapter(adapterNames, trainable);
        }
        foreach (var (_, w) in ModulesToSaveWrappers())
        {
            if (adapterNames.FirstOrDefault(w.Has) is { } name) w.SetAdapter(name, trainable);
            else w.ClearActive();
        }
        _active = adapterNames.ToList();
    }

    /// <summary>Enables (or disables) every tuner layer and wrapper (PEFT <c>enable_adapter_layers</c> / <c>disable_adapter_layers</c>).</summary>
    public virtual void SetAdapterLayersEnabled(bool enabled)
    {
        foreach (var (_, layer) in TunerLayers()) layer.DisableAdapters = !enabled;
        foreach (var (_, w) in ModulesToSaveWrappers()) w.DisableAdapters = !enabled;
    }

    /// <summary>Removes <paramref name="adapterName"/> everywhere (PEFT <c>delete_adapter</c>); deleting an active one activates the first remaining.</summary>
    public virtual void DeleteAdapter(string adapterName)
    {
        if (!_configs.ContainsKey(adapterName)) throw new ArgumentException($"Adapter '{adapterName}' not found (have: {string.Join(", ", _configs.Keys)}).", nameof(adapterName));
        foreach (var (_, layer) in TunerLayers()) layer.DeleteAdapter(adapterName);
        foreach (var (_, w) in ModulesToSaveWrappers()) w.DeleteAdapter(adapterName);
        _configs.Remove(adapterName);
        _active.Remove(adapterName);
        if (_active.Count == 0 && _configs.Count > 0)
        {
            var (next, cfg) = _configs.First();
            SetAdapter([next], trainable: !cfg.InferenceMode);
        }
    }

    /// <summary>Replaces the stored config of an existing adapter (a method updating it, e.g. AdaLoRA's final <c>rank_pattern</c>).</summary>
    protected void UpdateConfig(string adapterName, PeftConfig config)
    {
        if (!_configs.ContainsKey(adapterName)) throw new ArgumentException($"Adapter '{adapterName}' not found.", nameof(adapterName));
        _configs[adapterName] = config;
    }

    /// <summary>Folds adapters into the base weights (PEFT <c>merge_adapter</c>).</summary>
    public void Merge(bool safeMerge = false, IReadOnlyList<string>? adapterNames = null)
    {
        ThrowIfNoMerge();
        foreach (var (_, layer) in TunerLayers()) layer.Merge(safeMerge, adapterNames);
    }

    /// <summary>Subtracts merged adapters again (PEFT <c>unmerge_adapter</c>).</summary>
    public void Unmerge()
    {
        foreach (var (_, layer) in TunerLayers()) layer.Unmerge();
    }

    private void ThrowIfNoMerge()
    {
        if (!SupportsMerge) throw new NotSupportedException($"{GetType().Name} adapters ({string.Join(", ", _configs.Values.Select(c => c.PeftType).Distinct())}) cannot be merged into the base model.");
    }

    /// <summary>
    /// Puts the base layers back in place of the tuner layers, after merging the adapters into them when
    /// <paramref name="merge"/> is set, and replaces modules_to_save wrappers by the active copy (PEFT
    /// <c>_unload_and_optionally_merge</c>), then returns the native heap's free pages to the OS
    /// (<see cref="Peft.Core.Torch.NativeHeap.Trim"/>). Returns the model.
    /// </summary>
    public nn.Module UnloadAndOptionallyMerge(bool merge, bool safeMerge = false, IReadOnlyList<string>? adapterNames = null)
    {
        if (merge) ThrowIfNoMerge();
        foreach (var (path, layer) in TunerLayers())
        {
            if (merge) layer.Merge(safeMerge, adapterNames);
            var (parent, childName, _) = ModuleSurgery.GetParent(model, path);
            ModuleSurgery.ReplaceChild(parent, childName, layer.BaseLayer);
            layer.ReleaseBaseLayer();
        }
        foreach (var (path, wrapper) in ModulesToSaveWrappers())
        {
            var (parent, childName, _) = ModuleSurgery.GetParent(model, path);
            // Replace first (the wrapper is what the field holds), then free what is not kept.
            var keep = wrapper.ActiveAdapter is { } a && wrapper.Has(a) ? wrapper[a] : wrapper.OriginalModule;
            ModuleSurgery.ReplaceChild(parent, childName, keep);
            wrapper.TakeForUnload();
        }
        // The adapter layers and the replaced base weights are freed now. glibc keeps free heap pages resident when a
        // live block sits above them, and by now the heap also holds what the forwards before the merge left free
        // (265 of 358 MB of OPT-125m's heap after a few 8 x 128 CPU forwards, pinned by MKL's cached GEMM buffers):
        // hand those pages back once here, as after loading (bench/README.md, merged_forward). A no-op off glibc.
        Peft.Core.Torch.NativeHeap.Trim();
        return model;
    }

    /// <summary>Unregisters the model from this tuner (after unloading) so that disposing the tuner leaves it alone.</summary>
    internal nn.Module DetachModel()
    {
        _internal_submodules.Remove("model");
        return model;
    }

    /// <summary>
    /// Hands per-row adapter names (one per batch row, "__base__" = none) to every tuner layer for one forward call
    /// (PEFT <c>adapter_names</c>); the returned scope takes them back. Null when <paramref name="adapterNames"/> is null.
    /// </summary>
    /// <exception cref="NotSupportedException">A layer holding adapters cannot mix them per row.</exception>
    public IDisposable? WithRowAdapters(IReadOnlyList<string>? adapterNames, long? batch)
    {
        if (adapterNames is null) return null;
        if (batch is { } b && adapterNames.Count != b)
            throw new ArgumentException($"adapter_names has {adapterNames.Count} entries but the batch has {b} rows.", nameof(adapterNames));
        foreach (var n in adapterNames.Distinct())
        {
            if (n != "__base__" && !_configs.ContainsKey(n))
                throw new ArgumentException($"adapter_names: unknown adapter '{n}' (have: {string.Join(", ", _configs.Keys)}, or \"__base__\").", nameof(adapterNames));
        }
        var layers = new List<IMixedBatchTunerLayer>();
        foreach (var (path, layer) in TunerLayers())
        {
            if (layer is IMixedBatchTunerLayer m) layers.Add(m);
            else if (layer.AdapterNames.Count > 0)
                throw new NotSupportedException($"adapter_names (mixed-adapter batches) is not supported by {layer.GetType().Name} at '{path}'.");
        }
        if (layers.Count == 0) throw new NotSupportedException($"adapter_names (mixed-adapter batches) is not supported by {GetType().Name}.");
        if (layers.Any(l => l.MergedAdapters.Count > 0)) throw new InvalidOperationException("Cannot use adapter_names while adapters are merged.");
        foreach (var l in layers) l.RowAdapterNames = adapterNames;
        return new RowAdapterScope(layers);
    }

    private sealed class RowAdapterScope(List<IMixedBatchTunerLayer> layers) : IDisposable
    {
        public void Dispose()
        {
            foreach (var l in layers) l.RowAdapterNames = null;
        }
    }
}
