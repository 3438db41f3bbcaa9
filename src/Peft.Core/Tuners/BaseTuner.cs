using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// A PEFT method that adapts a model by replacing some of its layers (PEFT <c>BaseTuner</c>: LoRA, IA3, ...). It holds
/// the user's model as its child <c>model</c>, so a <see cref="PeftModel"/>'s state-dict keys are
/// <c>base_model.model.&lt;path&gt;</c> exactly as in PEFT. A method implements the matching of target modules, the
/// creation of its layers, and its adapter-file layout; the rest (injection loop, adapter switching, merge / unload,
/// modules_to_save) is shared here.
/// </summary>
/// <remarks>The model is changed in place: its layers are replaced by tuner layers that hold the originals.</remarks>
public abstract class BaseTuner : nn.Module
{
    private readonly nn.Module model;
    private readonly List<string> _warnings = new();

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

    /// <summary>Records and logs a warning.</summary>
    protected void Warn(string message)
    {
        _warnings.Add(message);
        Logger.LogWarning("{Message}", message);
    }

    /// <summary>Fills in defaults that depend on the model (target modules per model_type, "all-linear" expansion, ...).</summary>
    public abstract PeftConfig PrepareConfig(PeftConfig config);

    /// <summary>Whether the module at <paramref name="key"/> is a target of <paramref name="config"/>.</summary>
    protected abstract bool IsTarget(PeftConfig config, string key);

    /// <summary>Adds <paramref name="adapterName"/> to <paramref name="target"/>: updates a tuner layer, or replaces the module with a new one.</summary>
    protected abstract void CreateOrUpdate(PeftConfig config, string adapterName, nn.Module target, string key, nn.Module parent, string childName);

    /// <summary>Makes only adapter parameters (and the method's extras, e.g. biases) trainable.</summary>
    protected abstract void MarkOnlyAdaptersTrainable(PeftConfig config);

    /// <summary>
    /// Runs the wrapped model (PEFT <c>BaseTuner.forward</c>). Layer-replacing methods need nothing more; a method that
    /// changes the inputs (prompt learning: virtual tokens, prefix key/values through <see cref="KeyValueCache"/>)
    /// overrides this. A <c>Module&lt;Tensor, Tensor&gt;</c> gets <see cref="ModelInput.InputsEmbeds"/> (else
    /// <see cref="ModelInput.InputIds"/>) and returns <see cref="ModelOutput.Logits"/>.
    /// </summary>
    public virtual ModelOutput Forward(ModelInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        switch (model)
        {
            case nn.Module<ModelInput, ModelOutput> m:
                return m.forward(input);
            case nn.Module<Tensor, Tensor> t:
                var x = input.InputsEmbeds ?? input.InputIds ?? throw new ArgumentException("ModelInput needs InputsEmbeds or InputIds for a Module<Tensor, Tensor>.", nameof(input));
                return new ModelOutput { Logits = t.forward(x) };
            default:
                throw new NotSupportedException($"Cannot run a {model.GetType().Name}: use a Module<ModelInput, ModelOutput> or Module<Tensor, Tensor>.");
        }
    }

    /// <summary>The adapter's tensors as PEFT saves them (keys <c>base_model.model.&lt;path&gt;...</c>, adapter name removed). Not owned by the caller.</summary>
    public abstract Dictionary<string, Tensor> GetAdapterStateDict(string adapterName, PeftConfig config);

    /// <summary>Copies saved tensors (PEFT layout) into adapter <paramref name="adapterName"/>; strict about names and shapes.</summary>
    public abstract void LoadAdapterStateDict(IReadOnlyDictionary<string, Tensor> tensors, string adapterName, PeftConfig config, string source);

    /// <summary>Every tuner layer with its path in <see cref="Model"/>.</summary>
    public IEnumerable<(string Path, ITunerLayer Layer)> TunerLayers() =>
        model.named_modules().Where(m => m.module is ITunerLayer).Select(m => (m.name, (ITunerLayer)m.module)).ToList();

    /// <summary>Every modules_to_save wrapper with its path in <see cref="Model"/>.</summary>
    public IEnumerable<(string Path, ModulesToSaveWrapper Wrapper)> ModulesToSaveWrappers() =>
        model.named_modules().Where(m => m.module is ModulesToSaveWrapper).Select(m => (m.name, (ModulesToSaveWrapper)m.module)).ToList();

    /// <summary>
    /// Adds adapter <paramref name="adapterName"/> to the model (PEFT <c>inject_adapter</c>). Returns the config as used
    /// (defaults filled in). Throws listing module names when no target matches.
    /// </summary>
    public virtual PeftConfig InjectAdapter(string adapterName, PeftConfig config, IReadOnlyList<string> activeAdapters)
    {
        config = PrepareConfig(config);
        var inner = new List<string>();
        foreach (var (path, m) in model.named_modules())
        {
            if (m is ITunerLayer or ModulesToSaveWrapper) inner.Add(path + ".");
        }
        var keys = model.named_modules().Select(m => m.name).Where(k => !inner.Any(p => k.StartsWith(p, StringComparison.Ordinal))).ToList();
        int matched = 0;
        foreach (var key in keys)
        {
            if (!IsTarget(config, key)) continue;
            var (parent, childName, target) = ModuleSurgery.GetParent(model, key);
            CreateOrUpdate(config, adapterName, target, key, parent, childName);
            matched++;
        }
        if (matched == 0)
        {
            var names = keys.Where(k => k.Length > 0).ToList();
            var leaves = names.Select(k => k[(k.LastIndexOf('.') + 1)..]).Where(n => !int.TryParse(n, out _)).Distinct().Take(30);
            throw new ArgumentException(
                $"Target modules {DescribeTargets(config)} not found in the base model ({model.GetType().Name}). " +
                $"Module names that exist: {string.Join(", ", leaves)}{(names.Count > 30 ? ", ..." : "")}. Please check the target modules and try again.");
        }
        foreach (var (_, layer) in TunerLayers())
        {
            if (layer.AdapterNames.Contains(adapterName)) layer.SetAdapter(activeAdapters);
        }
        MarkOnlyAdaptersTrainable(config);
        if (config.InferenceMode) FreezeAdapter(adapterName);
        return config;
    }

    /// <summary>How the config names its targets, for error messages.</summary>
    protected abstract string DescribeTargets(PeftConfig config);

    /// <summary>Sets requires_grad = false on every parameter of <paramref name="adapterName"/>.</summary>
    public void FreezeAdapter(string adapterName)
    {
        foreach (var (n, p) in model.named_parameters())
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
        var inner = new List<string>();
        foreach (var (path, m) in model.named_modules())
        {
            if (m is ITunerLayer or ModulesToSaveWrapper) inner.Add(path + ".");
        }
        var keys = model.named_modules().Select(m => m.name).Where(k => !inner.Any(p => k.StartsWith(p, StringComparison.Ordinal))).ToList();
        foreach (var key in keys)
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

    /// <summary>Makes <paramref name="adapterNames"/> the active adapters of every layer and wrapper.</summary>
    public void SetAdapter(IReadOnlyList<string> adapterNames, bool trainable = true)
    {
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
    }

    /// <summary>Enables (or disables) every tuner layer and wrapper (PEFT <c>enable_adapter_layers</c> / <c>disable_adapter_layers</c>).</summary>
    public void SetAdapterLayersEnabled(bool enabled)
    {
        foreach (var (_, layer) in TunerLayers()) layer.DisableAdapters = !enabled;
        foreach (var (_, w) in ModulesToSaveWrappers()) w.DisableAdapters = !enabled;
    }

    /// <summary>Removes <paramref name="adapterName"/> from every layer and wrapper.</summary>
    public void DeleteAdapter(string adapterName)
    {
        foreach (var (_, layer) in TunerLayers()) layer.DeleteAdapter(adapterName);
        foreach (var (_, w) in ModulesToSaveWrappers()) w.DeleteAdapter(adapterName);
    }

    /// <summary>Folds adapters into the base weights (PEFT <c>merge_adapter</c>).</summary>
    public void Merge(bool safeMerge = false, IReadOnlyList<string>? adapterNames = null)
    {
        foreach (var (_, layer) in TunerLayers()) layer.Merge(safeMerge, adapterNames);
    }

    /// <summary>Subtracts merged adapters again (PEFT <c>unmerge_adapter</c>).</summary>
    public void Unmerge()
    {
        foreach (var (_, layer) in TunerLayers()) layer.Unmerge();
    }

    /// <summary>
    /// Puts the base layers back in place of the tuner layers, after merging the adapters into them when
    /// <paramref name="merge"/> is set, and replaces modules_to_save wrappers by the active copy (PEFT
    /// <c>_unload_and_optionally_merge</c>). Returns the model.
    /// </summary>
    public nn.Module UnloadAndOptionallyMerge(bool merge, bool safeMerge = false, IReadOnlyList<string>? adapterNames = null)
    {
        foreach (var (path, layer) in TunerLayers())
        {
            if (merge) layer.Merge(safeMerge, adapterNames);
            var (parent, childName, _) = ModuleSurgery.GetParent(model, path);
            ModuleSurgery.ReplaceChild(parent, childName, layer.BaseLayer);
            if (layer is LoraLayer l) l.DisposeKeepingBase();
        }
        foreach (var (path, wrapper) in ModulesToSaveWrappers())
        {
            var (parent, childName, _) = ModuleSurgery.GetParent(model, path);
            // Replace first (the wrapper is what the field holds), then free what is not kept.
            var keep = wrapper.ActiveAdapter is { } a && wrapper.Has(a) ? wrapper[a] : wrapper.OriginalModule;
            ModuleSurgery.ReplaceChild(parent, childName, keep);
            wrapper.TakeForUnload();
        }
        return model;
    }

    /// <summary>Unregisters the model from this tuner (after unloading) so that disposing the tuner leaves it alone.</summary>
    internal nn.Module DetachModel()
    {
        _internal_submodules.Remove("model");
        return model;
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
        return layersToTransform.Contains(int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
    }
}
