using System.Globalization;
using Microsoft.Extensions.Logging;
using Peft.Core.Safetensors;
using Peft.Core.Tuners;
using TorchSharp;
using static TorchSharp.torch;

using Peft.Core.IO;

namespace Peft.Core;

/// <summary>
/// A model with PEFT adapters (PEFT <c>PeftModel</c>). Works on a <c>Peft.Transformers</c> model
/// (<see cref="nn.Module{ModelInput, ModelOutput}"/> implementing <see cref="IPreTrainedModel"/>) and on any plain
/// TorchSharp module: a <c>Module&lt;Tensor, Tensor&gt;</c> is run with <see cref="ModelInput.InputsEmbeds"/> (or
/// <see cref="ModelInput.InputIds"/>) as its input and its output returned as <see cref="ModelOutput.Logits"/>, or
/// directly through <see cref="ForwardTensor(Tensor, IReadOnlyList{string})"/>.
/// </summary>
/// <remarks>
/// <para><see cref="GetPeftModel"/> changes the model it is given: target layers are replaced in place by adapter
/// layers that hold the originals, and every base parameter is frozen. <see cref="MergeAndUnload"/> /
/// <see cref="Unload"/> give the plain model back.</para>
/// <para>State-dict keys are PEFT's: <c>base_model.model.&lt;path&gt;.lora_A.&lt;adapter&gt;.weight</c>, ...</para>
/// </remarks>
public sealed class PeftModel : nn.Module<ModelInput, ModelOutput>, ITrainingHooks, IGradientCheckpointing, IGenerationStepHook
{
    /// <summary>The weights file inside an adapter folder.</summary>
    public const string WeightsFileName = "adapter_model.safetensors";

    private readonly BaseTuner base_model;
    private bool _unloaded;

    private PeftModel(BaseTuner tuner) : base("PeftModel")
    {
        base_model = tuner;
        RegisterComponents();
    }

    /// <summary>
    /// The tuner (PEFT <c>peft_model.base_model</c>, e.g. <see cref="LoraModel"/>). It owns the adapter configs and the
    /// active adapters, so calls on it and on this model cannot disagree.
    /// </summary>
    public BaseTuner Tuner => base_model;

    /// <summary>The configs of all adapters, by name (PEFT <c>peft_config</c>; held by <see cref="Tuner"/>).</summary>
    public IReadOnlyDictionary<string, PeftConfig> PeftConfigs => base_model.PeftConfigs;

    /// <summary>The active adapter's config (PEFT <c>active_peft_config</c>).</summary>
    public PeftConfig ActivePeftConfig => base_model.ActivePeftConfig;

    /// <summary>The active adapters (PEFT <c>active_adapters</c>).</summary>
    public IReadOnlyList<string> ActiveAdapters => base_model.ActiveAdapters;

    /// <summary>The first active adapter (PEFT <c>active_adapter</c>).</summary>
    public string ActiveAdapter => base_model.ActiveAdapter;

    /// <summary>Warnings raised while adding adapters (e.g. fan_in_fan_out corrected for Conv1D).</summary>
    public IReadOnlyList<string> Warnings => base_model.Warnings;

    /// <summary>
    /// Adds adapter <paramref name="adapterName"/> described by <paramref name="config"/> to <paramref name="model"/>
    /// (HF <c>get_peft_model</c>). The model is changed in place (layers replaced, base parameters frozen) and becomes
    /// the child <c>base_model.model</c> of the returned module. For <see cref="TaskType.SeqCls"/> /
    /// <see cref="TaskType.TokenCls"/> the heads <c>classifier</c> and <c>score</c> are added to <c>modules_to_save</c>
    /// (<c>qa_outputs</c> for question answering), as PEFT does.
    /// </summary>
    /// <param name="model">The model to adapt (changed in place).</param>
    /// <param name="config">The adapter's config.</param>
    /// <param name="adapterName">The adapter's name.</param>
    /// <param name="logger">Where warnings go.</param>
    /// <param name="autocastAdapterDtype">
    /// PEFT <c>autocast_adapter_dtype</c> (default true): float16 / bfloat16 adapter weights are upcast to float32, and
    /// the layers run the adapter math in float32 and return the base output's dtype; false keeps the base dtype.
    /// </param>
    /// <exception cref="ArgumentException">No module matches the targets (the message lists module names), or the config is invalid.</exception>
    public static PeftModel GetPeftModel(nn.Module model, PeftConfig config, string adapterName = "default", ILogger? logger = null, bool autocastAdapterDtype = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentException.ThrowIfNullOrEmpty(adapterName);
        SafePath.CheckName(adapterName, "Adapter name");
        if (model is PeftModel) throw new ArgumentException("The model is already a PeftModel; use AddAdapter to add another adapter.", nameof(model));
        if (model.named_modules().Any(m => m.module is ITunerLayer))
            throw new ArgumentException("The model already contains adapter layers (was it passed to GetPeftModel before?).", nameof(model));
        var entry = PeftRegistry.Get(config.PeftType);
        config.PrepareModel(model);
        var tuner = entry.CreateTuner(model, logger);
        var pm = new PeftModel(tuner);
        tuner.AddAdapter(adapterName, config, autocastAdapterDtype);
        return pm;
    }

    /// <summary>
    /// Loads an adapter folder (<c>adapter_config.json</c> + <c>adapter_model.safetensors</c>) onto
    /// <paramref name="model"/> (HF <c>PeftModel.from_pretrained</c>). With <paramref name="isTrainable"/> false the
    /// adapter is frozen and the model is put in eval mode. <paramref name="dir"/> may be a Hub id ("user/adapter"), resolved
    /// through <see cref="AdapterSources"/> (downloaded into the HF cache once Peft.Transformers is in use).
    /// With <paramref name="autocastAdapterDtype"/> (PEFT <c>autocast_adapter_dtype</c>, default true) the adapter
    /// weights of a float16 / bfloat16 model are float32 (the saved values are loaded into them).
    /// </summary>
    public static PeftModel FromPretrained(nn.Module model, string dir, bool isTrainable = false, string adapterName = "default", ILogger? logger = null, bool autocastAdapterDtype = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        SafePath.CheckName(adapterName, "Adapter name"); // before anything is downloaded or read
        dir = AdapterSources.Resolve(dir);
        var config = PeftConfig.FromPretrained(dir) with { InferenceMode = !isTrainable };
        var pm = GetPeftModel(model, config, adapterName, logger, autocastAdapterDtype);
        pm.LoadAdapterWeights(dir, adapterName);
        if (!isTrainable) pm.eval();
        return pm;
    }

    /// <summary>
    /// Adds another adapter from a folder (HF <c>load_adapter</c>); it is not made active (see <see cref="SetAdapter"/>).
    /// <paramref name="autocastAdapterDtype"/>: as in <see cref="GetPeftModel"/>.
    /// </summary>
    public void LoadAdapter(string dir, string adapterName, bool isTrainable = false, bool autocastAdapterDtype = true)
    {
        ThrowIfUnloaded();
        SafePath.CheckName(adapterName, "Adapter name"); // before anything is downloaded or read
        dir = AdapterSources.Resolve(dir);
        var config = PeftConfig.FromPretrained(dir) with { InferenceMode = !isTrainable };
        AddAdapter(adapterName, config, autocastAdapterDtype);
        LoadAdapterWeights(dir, adapterName);
        if (!isTrainable) eval();
    }

    /// <summary>
    /// Adds a new (freshly initialised) adapter (HF <c>add_adapter</c>); it is not made active.
    /// <paramref name="autocastAdapterDtype"/>: as in <see cref="GetPeftModel"/>.
    /// </summary>
    public void AddAdapter(string adapterName, PeftConfig config, bool autocastAdapterDtype = true)
    {
        ThrowIfUnloaded();
        SafePath.CheckName(adapterName, "Adapter name");
        base_model.AddAdapter(adapterName, config, autocastAdapterDtype);
    }

    private void LoadAdapterWeights(string dir, string adapterName)
    {
        var path = Path.Combine(dir, WeightsFileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"No {WeightsFileName} in adapter folder '{dir}'.", path);
        SafePath.EnsureInside(dir, path, $"Adapter folder '{dir}': {WeightsFileName}");
        using var scope = NewDisposeScope();
        using var file = SafetensorsFile.Open(path);
        var tensors = file.ReadAll();
        base_model.LoadAdapterStateDict(tensors, adapterName, path);
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
        var configs = base_model.PeftConfigs;
        foreach (var name in selectedAdapters ?? configs.Keys.ToList())
        {
            if (!configs.ContainsKey(name)) throw new ArgumentException($"No adapter '{name}' (have: {string.Join(", ", configs.Keys)}).");
            // Never follow a symlink out of the target folder (dir/<name> pointing elsewhere, or a file link inside it).
            var outDir = name == "default" ? Path.GetFullPath(dir) : SafePath.Resolve(dir, SafePath.CheckName(name, "Adapter name"), $"SavePretrained('{dir}'): adapter folder");
            Directory.CreateDirectory(outDir);
            SafePath.EnsureInside(dir, Path.Combine(outDir, WeightsFileName), $"SavePretrained('{dir}'): {WeightsFileName}");
            SafePath.EnsureInside(dir, Path.Combine(outDir, PeftConfig.ConfigFileName), $"SavePretrained('{dir}'): {PeftConfig.ConfigFileName}");
            using var scope = NewDisposeScope();
            var tensors = base_model.GetAdapterStateDict(name);
            var config = base_model.PeftConfigs[name];
            SafetensorsWriter.Save(Path.Combine(outDir, WeightsFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
            (config with { InferenceMode = true }).SavePretrained(outDir);
        }
    }

    /// <summary>Makes <paramref name="adapterName"/> the active adapter (HF <c>set_adapter</c>); only it trains.</summary>
    public void SetAdapter(string adapterName)
    {
        ThrowIfUnloaded();
        if (!PeftConfigs.TryGetValue(adapterName, out var config)) throw new ArgumentException($"Adapter '{adapterName}' not found (have: {string.Join(", ", PeftConfigs.Keys)}).", nameof(adapterName));
        base_model.SetAdapter([adapterName], trainable: !config.InferenceMode);
    }

    /// <summary>Removes an adapter (HF <c>delete_adapter</c>). Deleting the active one activates the first remaining.</summary>
    public void DeleteAdapter(string adapterName)
    {
        ThrowIfUnloaded();
        base_model.DeleteAdapter(adapterName);
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
    /// Adds <paramref name="adapterName"/> combined from <paramref name="adapters"/> of a tuner that supports it (<see cref="IWeightedAdapterTuner"/>: LoRA) with <paramref name="weights"/>
    /// (HF <c>add_weighted_adapter</c>; <see cref="CombinationType.Svd"/> (default, as PEFT's "svd"), <see cref="CombinationType.Linear"/> or <see cref="CombinationType.Cat"/>). Not made active.
    /// </summary>
    public void AddWeightedAdapter(IReadOnlyList<string> adapters, IReadOnlyList<double> weights, string adapterName, CombinationType combinationType = CombinationType.Svd)
    {
        ThrowIfUnloaded();
        if (base_model is not IWeightedAdapterTuner weighted)
            throw new NotSupportedException($"AddWeightedAdapter is not supported by {base_model.GetType().Name} ({ActivePeftConfig.PeftType} adapters).");
        weighted.AddWeightedAdapter(adapters, weights, adapterName, combinationType);
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

    /// <summary>
    /// (trainable, all) parameter counts as PEFT counts them (HF <c>get_nb_trainable_parameters</c>; shared parameters
    /// once; a packed 4-bit weight counts the values it holds, numel · 2, as PEFT counts bnb's <c>Params4bit</c>).
    /// </summary>
    public (long trainable, long all) GetNbTrainableParameters()
    {
        long trainable = 0, all = 0;
        var packed = Quantization.PackedParameterCount.Multipliers(this);
        foreach (var (_, p) in named_parameters())
        {
            long n = Quantization.PackedParameterCount.Count(p, packed);
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
    /// Runs the model through the tuner (<see cref="BaseTuner.Forward"/>: a method may transform the inputs first, e.g.
    /// prepend virtual tokens). A <c>Module&lt;ModelInput, ModelOutput&gt;</c> base model gets the (transformed) input; a
    /// <c>Module&lt;Tensor, Tensor&gt;</c> gets <see cref="ModelInput.InputsEmbeds"/> (else <see cref="ModelInput.InputIds"/>)
    /// and its output is returned as <see cref="ModelOutput.Logits"/>. <see cref="ModelInput.AdapterNames"/> selects an
    /// adapter per row (mixed-adapter batch). The caller owns the outputs.
    /// </summary>
    public override ModelOutput forward(ModelInput input)
    {
        ThrowIfUnloaded();
        ArgumentNullException.ThrowIfNull(input);
        var rows = input.InputIds ?? input.InputsEmbeds;
        using var mixed = base_model.WithRowAdapters(input.AdapterNames, rows?.shape[0]);
        return base_model.Forward(input);
    }

    /// <summary>One decoding step through the tuner's <c>prepare_inputs_for_generation</c> (see <see cref="IGenerationStepHook"/>).</summary>
    public ModelOutput ForwardGenerationStep(ModelInput stepInput)
    {
        ThrowIfUnloaded();
        ArgumentNullException.ThrowIfNull(stepInput);
        var rows = stepInput.InputIds ?? stepInput.InputsEmbeds;
        using var mixed = base_model.WithRowAdapters(stepInput.AdapterNames, rows?.shape[0]);
        return base_model.ForwardGenerationStep(stepInput);
    }

    /// <summary>
    /// Runs a wrapped <c>Module&lt;Tensor, Tensor&gt;</c> on <paramref name="x"/> ([B, ...]); with
    /// <paramref name="adapterNames"/> (one per row, "__base__" = no adapter) each row uses its own adapter. The caller owns the result.
    /// </summary>
    /// <remarks>
    /// The module's own call is <see cref="forward(ModelInput)"/> (the TorchSharp override that shared/docs/DESIGN.md fixes);
    /// other entry points are PascalCase <c>Forward*</c> methods named for what they take, as
    /// <see cref="ForwardGenerationStep"/>. PEFT has one <c>forward</c> for both; C# needs the typed entry point for
    /// a <c>Module&lt;Tensor, Tensor&gt;</c> base because <see cref="PeftModel"/> is a <c>Module&lt;ModelInput, ModelOutput&gt;</c>.
    /// </remarks>
    public Tensor ForwardTensor(Tensor x, IReadOnlyList<string>? adapterNames = null)
    {
        ThrowIfUnloaded();
        ArgumentNullException.ThrowIfNull(x);
        using var mixed = base_model.WithRowAdapters(adapterNames, x.shape[0]);
        return base_model.Model is nn.Module<Tensor, Tensor> t ? t.forward(x)
            : throw new NotSupportedException($"{base_model.Model.GetType().Name} is not a Module<Tensor, Tensor>; use forward(ModelInput).");
    }

    /// <summary>The tuner's extra training loss term (AdaLoRA's orthogonal regulariser), or null (see <see cref="ITrainingHooks.LossTerm"/>).</summary>
    public Tensor? LossTerm()
    {
        ThrowIfUnloaded();
        return base_model.LossTerm();
    }

    /// <summary>Forwards to the tuner after each optimizer step (AdaLoRA's <c>update_and_allocate</c>; see <see cref="ITrainingHooks.OnOptimizerStep"/>).</summary>
    public void OnOptimizerStep(int globalStep)
    {
        ThrowIfUnloaded();
        base_model.OnOptimizerStep(globalStep);
    }

    /// <inheritdoc />
    public bool IsGradientCheckpointing => base_model.Model is IGradientCheckpointing g && g.IsGradientCheckpointing;

    /// <summary>Turns on gradient checkpointing of the wrapped model (HF <c>gradient_checkpointing_enable</c>).</summary>
    /// <exception cref="NotSupportedException">The wrapped model does not implement <see cref="IGradientCheckpointing"/>.</exception>
    public void GradientCheckpointingEnable() => Checkpointing().GradientCheckpointingEnable();

    /// <summary>Turns off gradient checkpointing of the wrapped model (HF <c>gradient_checkpointing_disable</c>).</summary>
    /// <exception cref="NotSupportedException">The wrapped model does not implement <see cref="IGradientCheckpointing"/>.</exception>
    public void GradientCheckpointingDisable() => Checkpointing().GradientCheckpointingDisable();

    private IGradientCheckpointing Checkpointing() => base_model.Model as IGradientCheckpointing
        ?? throw new NotSupportedException($"Gradient checkpointing is not supported by the wrapped model {base_model.Model.GetType().FullName} (it does not implement IGradientCheckpointing).");

    private void ThrowIfUnloaded()
    {
        if (_unloaded) throw new InvalidOperationException("This PeftModel was unloaded (MergeAndUnload / Unload); use the returned base model.");
    }
}
