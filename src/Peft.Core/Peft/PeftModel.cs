using System.Globalization;
using Microsoft.Extensions.Logging;
using Peft.Core.Safetensors;
using Peft.Core.Tuners;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core;

/// <summary>
/// A model with PEFT adapters (PEFT <c>PeftModel</c>). Works on a <c>Peft.Transformers</c> model
/// (<see cref="nn.Module{ModelInput, ModelOutput}"/> implementing <see cref="IPretrainedModel"/>) and on any plain
/// TorchSharp module: a <c>Module&lt;Tensor, Tensor&gt;</c> is run with <see cref="ModelInput.InputsEmbeds"/> (or
/// <see cref="ModelInput.InputIds"/>) as its input and its output returned as <see cref="ModelOutput.Logits"/>, or
/// directly through <see cref="Forward(Tensor, IReadOnlyList{string})"/>.
/// </summary>
/// <remarks>
/// <para><see cref="GetPeftModel"/> changes the model it is given: target layers are replaced in place by adapter
/// layers that hold the originals, and every base parameter is frozen. <see cref="MergeAndUnload"/> /
/// <see cref="Unload"/> give the plain model back.</para>
/// <para>State-dict keys are PEFT's: <c>base_model.model.&lt;path&gt;.lora_A.&lt;adapter&gt;.weight</c>, ...</para>
/// </remarks>
public sealed class PeftModel : nn.Module<ModelInput, ModelOutput>
{
    /// <summary>The weights file inside an adapter folder.</summary>
    public const string WeightsFileName = "adapter_model.safetensors";

    private readonly BaseTuner base_model;
    private readonly Dictionary<string, PeftConfig> _configs = new(StringComparer.Ordinal);
    private List<string> _active;
    private bool _unloaded;

    private PeftModel(BaseTuner tuner, string adapterName) : base("PeftModel")
    {
        base_model = tuner;
        _active = [adapterName];
        RegisterComponents();
    }

    /// <summary>The tuner (PEFT <c>peft_model.base_model</c>, e.g. <see cref="LoraModel"/>).</summary>
    public BaseTuner Tuner => base_model;

    /// <summary>The configs of all adapters, by name (PEFT <c>peft_config</c>).</summary>
    public IReadOnlyDictionary<string, PeftConfig> PeftConfigs => _configs;

    /// <summary>The active adapter's config (PEFT <c>active_peft_config</c>).</summary>
    public PeftConfig ActivePeftConfig => _configs[_active[0]];

    /// <summary>The active adapters (PEFT <c>active_adapters</c>).</summary>
    public IReadOnlyList<string> ActiveAdapters => _active;

    /// <summary>The first active adapter (PEFT <c>active_adapter</c>).</summary>
    public string ActiveAdapter => _active[0];

    /// <summary>Warnings raised while adding adapters (e.g. fan_in_fan_out corrected for Conv1D).</summary>
    public IReadOnlyList<string> Warnings => base_model.Warnings;

    /// <summary>
    /// Adds adapter <paramref name="adapterName"/> described by <paramref name="config"/> to <paramref name="model"/>
    /// (HF <c>get_peft_model</c>). The model is changed in place (layers replaced, base parameters frozen) and becomes
    /// the child <c>base_model.model</c> of the returned module. For <see cref="TaskType.SeqCls"/> /
    /// <see cref="TaskType.TokenCls"/> the heads <c>classifier</c> and <c>score</c> are added to <c>modules_to_save</c>
    /// (<c>qa_outputs</c> for question answering), as PEFT does.
    /// </summary>
    /// <exception cref="ArgumentException">No module matches the targets (the message lists module names), or the config is invalid.</exception>
    public static PeftModel GetPeftModel(nn.Module model, PeftConfig config, string adapterName = "default", ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentException.ThrowIfNullOrEmpty(adapterName);
        if (model is PeftModel) throw new ArgumentException("The model is already a PeftModel; use AddAdapter to add another adapter.", nameof(model));
        if (model.named_modules().Any(m => m.module is ITunerLayer))
            throw new ArgumentException("The model already contains adapter layers (was it passed to GetPeftModel before?).", nameof(model));
        var entry = PeftRegistry.Get(config.PeftType);
        if (entry.CreateTuner is null)
            throw new NotSupportedException($"peft_type {config.PeftType} does not replace layers; it is not supported by this PeftModel yet.");
        var tuner = entry.CreateTuner(model, logger);
        var pm = new PeftModel(tuner, adapterName);
        pm.AddAdapterCore(adapterName, config);
        return pm;
    }

    /// <summary>
    /// Loads an adapter folder (<c>adapter_config.json</c> + <c>adapter_model.safetensors</c>) onto
    /// <paramref name="model"/> (HF <c>PeftModel.from_pretrained</c>). With <paramref name="isTrainable"/> false the
    /// adapter is frozen and the model is put in eval mode.
    /// </summary>
    public static PeftModel FromPretrained(nn.Module model, string dir, bool isTrainable = false, string adapterName = "default", ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var config = PeftConfig.FromPretrained(dir) with { InferenceMode = !isTrainable };
        var pm = GetPeftModel(model, config, adapterName, logger);
        pm.LoadAdapterWeights(dir, adapterName);
        if (!isTrainable) pm.eval();
        return pm;
    }

    /// <summary>Adds another adapter from a folder (HF <c>load_adapter</c>); it is not made active (see <see cref="SetAdapter"/>).</summary>
    public void LoadAdapter(string dir, string adapterName, bool isTrainable = false)
    {
        ThrowIfUnloaded();
        var config = PeftConfig.FromPretrained(dir) with { InferenceMode = !isTrainable };
        AddAdapter(adapterName, config);
        LoadAdapterWeights(dir, adapterName);
        if (!isTrainable) eval();
    }

    /// <summary>Adds a new (freshly initialised) adapter (HF <c>add_adapter</c>); it is not made active.</summary>
    public void AddAdapter(string adapterName, PeftConfig config)
    {
        ThrowIfUnloaded();
        ArgumentException.ThrowIfNullOrEmpty(adapterName);
        ArgumentNullException.ThrowIfNull(config);
        if (_configs.ContainsKey(adapterName)) throw new ArgumentException($"Adapter '{adapterName}' already exists.", nameof(adapterName));
        if (config.PeftType != ActivePeftConfig.PeftType)
            throw new ArgumentException($"Cannot add a {config.PeftType} adapter to a model with {ActivePeftConfig.PeftType} adapters.", nameof(config));
        AddAdapterCore(adapterName, config);
    }

    private void AddAdapterCore(string adapterName, PeftConfig config)
    {
        if (config.BaseModelNameOrPath is null && base_model.Model is IPretrainedModel pre) config = config with { BaseModelNameOrPath = pre.NameOrPath };
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
        config = base_model.InjectAdapter(adapterName, config, _active);
        _configs[adapterName] = config;
        base_model.SetModulesToSave(adapterName, config.ModulesToSaveNames, active: _active.Contains(adapterName), trainable: !config.InferenceMode);
    }

    private void LoadAdapterWeights(string dir, string adapterName)
    {
        var path = Path.Combine(dir, WeightsFileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"No {WeightsFileName} in adapter folder '{dir}'.", path);
        using var scope = NewDisposeScope();
        using var file = SafetensorsFile.Open(path);
        var tensors = file.ReadAll();
        base_model.LoadAdapterStateDict(tensors, adapterName, _configs[adapterName], path);
    }

    /// <summary>
    /// Writes each adapter (default: all) to <paramref name="dir"/> as PEFT does: the "default" adapter in
    /// <paramref name="dir"/>, others in <c>dir/&lt;adapter&gt;</c>; <c>adapter_config.json</c> (inference_mode true)
    /// and <c>adapter_model.safetensors</c> (adapter name removed from the keys, metadata {"format":"pt"}). HF <c>save_pretrained</c>.
    /// </summary>
    public void SavePretrained(string dir, IReadOnlyList<string>? selectedAdapters = null)
    {
        ThrowIfUnloaded();
        ArgumentNullException.ThrowIfNull(dir);
        foreach (var name in selectedAdapters ?? _configs.Keys.ToList())
        {
            if (!_configs.TryGetValue(name, out var config)) throw new ArgumentException($"No adapter '{name}' (have: {string.Join(", ", _configs.Keys)}).");
            var outDir = name == "default" ? dir : Path.Combine(dir, name);
            Directory.CreateDirectory(outDir);
            var tensors = base_model.GetAdapterStateDict(name, config);
            SafetensorsWriter.Save(Path.Combine(outDir, WeightsFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
            (config with { InferenceMode = true }).SavePretrained(outDir);
        }
    }

    /// <summary>Makes <paramref name="adapterName"/> the active adapter (HF <c>set_adapter</c>); only it trains.</summary>
    public void SetAdapter(string adapterName)
    {
        ThrowIfUnloaded();
        if (!_configs.TryGetValue(adapterName, out var config)) throw new ArgumentException($"Adapter '{adapterName}' not found (have: {string.Join(", ", _configs.Keys)}).", nameof(adapterName));
        base_model.SetAdapter([adapterName], trainable: !config.InferenceMode);
        _active = [adapterName];
    }

    /// <summary>Removes an adapter (HF <c>delete_adapter</c>). Deleting the active one activates the first remaining.</summary>
    public void DeleteAdapter(string adapterName)
    {
        ThrowIfUnloaded();
        if (!_configs.ContainsKey(adapterName)) throw new ArgumentException($"Adapter '{adapterName}' not found (have: {string.Join(", ", _configs.Keys)}).", nameof(adapterName));
        base_model.DeleteAdapter(adapterName);
        _configs.Remove(adapterName);
        _active.Remove(adapterName);
        if (_active.Count == 0 && _configs.Count > 0) SetAdapter(_configs.Keys.First());
    }

    /// <summary>
    /// Runs the base model without any adapter until disposed (HF <c>with model.disable_adapter():</c>). Merged
    /// adapters are unmerged first.
    /// </summary>
    public IDisposable DisableAdapter()
    {
        ThrowIfUnloaded();
        base_model.SetAdapterLayersEnabled(false);
        return new ReEnable(this);
    }

    private sealed class ReEnable(PeftModel owner) : IDisposable
    {
        private bool _done;

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            owner.base_model.SetAdapterLayersEnabled(true);
        }
    }

    /// <summary>
    /// Adds <paramref name="adapterName"/> combined from LoRA <paramref name="adapters"/> with <paramref name="weights"/>
    /// (HF <c>add_weighted_adapter</c>; combination "svd" (default), "linear" or "cat"). Not made active.
    /// </summary>
    public void AddWeightedAdapter(IReadOnlyList<string> adapters, IReadOnlyList<double> weights, string adapterName, string combinationType = "svd")
    {
        ThrowIfUnloaded();
        if (base_model is not LoraModel lora) throw new NotSupportedException("AddWeightedAdapter needs LoRA adapters.");
        if (_configs.ContainsKey(adapterName)) throw new ArgumentException($"Adapter '{adapterName}' already exists.", nameof(adapterName));
        _configs[adapterName] = lora.AddWeightedAdapter(_configs, adapters, weights, adapterName, combinationType, _active);
    }

    /// <summary>Folds the active (or given) adapters into the base weights, keeping the adapter layers (HF <c>merge_adapter</c>).</summary>
    public void MergeAdapter(IReadOnlyList<string>? adapterNames = null, bool safeMerge = false)
    {
        ThrowIfUnloaded();
        base_model.Merge(safeMerge, adapterNames);
    }

    /// <summary>Undoes <see cref="MergeAdapter"/> (HF <c>unmerge_adapter</c>).</summary>
    public void UnmergeAdapter()
    {
        ThrowIfUnloaded();
        base_model.Unmerge();
    }

    /// <summary>
    /// Merges the active (or given) adapters into the base weights, removes the adapter layers and returns the base
    /// model (HF <c>merge_and_unload</c>); modules_to_save are replaced by the adapter's copy. This PeftModel is
    /// unusable afterwards and no longer owns the model.
    /// </summary>
    public nn.Module MergeAndUnload(bool safeMerge = false, IReadOnlyList<string>? adapterNames = null)
    {
        ThrowIfUnloaded();
        base_model.UnloadAndOptionallyMerge(true, safeMerge, adapterNames);
        _unloaded = true;
        return base_model.DetachModel();
    }

    /// <summary>Removes the adapter layers without merging and returns the base model (HF <c>unload</c>). This PeftModel is unusable afterwards.</summary>
    public nn.Module Unload()
    {
        ThrowIfUnloaded();
        base_model.Unmerge();
        base_model.UnloadAndOptionallyMerge(false);
        _unloaded = true;
        return base_model.DetachModel();
    }

    /// <summary>The wrapped model, with its adapter layers (HF <c>get_base_model()</c>).</summary>
    public nn.Module GetBaseModel() => base_model.Model;

    /// <summary>(trainable, all) parameter counts as PEFT counts them (HF <c>get_nb_trainable_parameters</c>; shared parameters once).</summary>
    public (long trainable, long all) GetNbTrainableParameters()
    {
        long trainable = 0, all = 0;
        foreach (var (_, p) in named_parameters())
        {
            long n = p.numel();
            all += n;
            if (p.requires_grad) trainable += n;
        }
        return (trainable, all);
    }

    /// <summary>Prints and returns PEFT's line, e.g. <c>trainable params: 2,048 || all params: 141,440 || trainable%: 1.4480</c>.</summary>
    public string PrintTrainableParameters()
    {
        var (trainable, all) = GetNbTrainableParameters();
        var line = string.Format(CultureInfo.InvariantCulture, "trainable params: {0:N0} || all params: {1:N0} || trainable%: {2:F4}",
            trainable, all, all == 0 ? 0.0 : 100.0 * trainable / all);
        Console.WriteLine(line);
        return line;
    }

    /// <summary>
    /// Runs the model. A <c>Module&lt;ModelInput, ModelOutput&gt;</c> gets <paramref name="input"/> unchanged; a
    /// <c>Module&lt;Tensor, Tensor&gt;</c> gets <see cref="ModelInput.InputsEmbeds"/> (else <see cref="ModelInput.InputIds"/>)
    /// and its output is returned as <see cref="ModelOutput.Logits"/>. The caller owns the outputs.
    /// </summary>
    public override ModelOutput forward(ModelInput input)
    {
        ThrowIfUnloaded();
        ArgumentNullException.ThrowIfNull(input);
        var rows = input.InputIds ?? input.InputsEmbeds;
        using var mixed = WithRowAdapters(input.AdapterNames, rows?.shape[0]);
        return base_model.Forward(input);
    }

    /// <summary>
    /// Runs a wrapped <c>Module&lt;Tensor, Tensor&gt;</c> on <paramref name="x"/> ([B, ...]); with
    /// <paramref name="adapterNames"/> (one per row, "__base__" = no adapter) each row uses its own adapter. The caller owns the result.
    /// </summary>
    public Tensor Forward(Tensor x, IReadOnlyList<string>? adapterNames = null)
    {
        ThrowIfUnloaded();
        ArgumentNullException.ThrowIfNull(x);
        using var mixed = WithRowAdapters(adapterNames, x.shape[0]);
        return base_model.Model is nn.Module<Tensor, Tensor> t ? t.forward(x)
            : throw new NotSupportedException($"{base_model.Model.GetType().Name} is not a Module<Tensor, Tensor>; use forward(ModelInput).");
    }

    /// <summary>
    /// Hands per-row adapter names to every LoRA layer for one forward call (PEFT passes <c>adapter_names</c> through
    /// forward pre-hooks the same way) and takes them back when disposed.
    /// </summary>
    private IDisposable? WithRowAdapters(IReadOnlyList<string>? adapterNames, long? batch)
    {
        if (adapterNames is null) return null;
        if (batch is { } b && adapterNames.Count != b)
            throw new ArgumentException($"adapter_names has {adapterNames.Count} entries but the batch has {b} rows.", nameof(adapterNames));
        foreach (var n in adapterNames.Distinct())
        {
            if (n != "__base__" && !_configs.ContainsKey(n))
                throw new ArgumentException($"adapter_names: unknown adapter '{n}' (have: {string.Join(", ", _configs.Keys)}, or \"__base__\").", nameof(adapterNames));
        }
        var layers = base_model.TunerLayers().Select(l => l.Layer).OfType<LoraLayer>().ToList();
        if (layers.Any(l => l.Merged)) throw new InvalidOperationException("Cannot use adapter_names while adapters are merged.");
        foreach (var l in layers) l.RowAdapterNames = adapterNames;
        return new RowAdapterScope(layers);
    }

    private sealed class RowAdapterScope(List<LoraLayer> layers) : IDisposable
    {
        public void Dispose()
        {
            foreach (var l in layers) l.RowAdapterNames = null;
        }
    }

    private void ThrowIfUnloaded()
    {
        if (_unloaded) throw new InvalidOperationException("This PeftModel was unloaded (MergeAndUnload / Unload); use the returned base model.");
    }
}
