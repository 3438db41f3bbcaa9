using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.IO;
using Peft.Core.Safetensors;
using Peft.Transformers.Generation;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Base class of every model architecture (HF <c>PreTrainedModel</c>): a TorchSharp module from
/// <see cref="ModelInput"/> to <see cref="ModelOutput"/> with its <see cref="Config"/>, generation defaults,
/// HF-compatible save, and parameter accounting. State-dict keys are exactly Hugging Face's.
/// </summary>
public abstract class PreTrainedModel : nn.Module<ModelInput, ModelOutput>, IPreTrainedModel, IGradientCheckpointing,
    Peft.Core.Quantization.IQuantizationDefaults, IInputRequireGrads
{
    private bool _gradientCheckpointing;

    /// <summary>Creates the model shell; derived constructors build the layers and call <c>RegisterComponents()</c>.</summary>
    protected PreTrainedModel(string name, PretrainedConfig config) : base(name)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        GenerationConfig = new GenerationConfig
        {
            BosTokenId = config.BosTokenId,
            EosTokenId = config.FirstEosTokenId,
            EosTokenIds = config.EosTokenId is { Count: > 1 } e ? e : null,
            PadTokenId = config.PadTokenId,
        };
    }

    /// <summary>The model's config (HF <c>model.config</c>).</summary>
    public PretrainedConfig Config { get; private set; }

    /// <summary>Decoding defaults: generation_config.json when the folder has one, else taken from the config (HF <c>model.generation_config</c>).</summary>
    public GenerationConfig GenerationConfig { get; set; }

    /// <inheritdoc />
    public string ModelType => Config.ModelType;

    /// <inheritdoc />
    public string? NameOrPath { get; internal set; }

    /// <inheritdoc />
    public abstract TransformerDimensions Dimensions { get; }

    /// <inheritdoc />
    public abstract Embedding GetInputEmbeddings();

    /// <summary>HF <c>base_model_prefix</c>: the name of the backbone inside a model with a head ("bert", "transformer", "model").</summary>
    public abstract string BaseModelPrefix { get; }

    /// <summary>True for the bare backbone (HF <c>AutoModel</c>), whose keys carry no <see cref="BaseModelPrefix"/>.</summary>
    public virtual bool IsBaseModel => false;

    /// <summary>Checkpoint keys of tied weights that may appear in a file and are not loaded (e.g. "lm_head.weight" with tied embeddings).</summary>
    protected internal virtual IReadOnlyCollection<string> TiedCheckpointKeys => [];

    /// <summary>
    /// Checkpoint keys that are dropped silently when the model has no such key (HF
    /// <c>_keys_to_ignore_on_load_unexpected</c>): buffers older exports saved that are no longer persistent, i.e.
    /// BERT's "embeddings.position_ids", Llama's "rotary_emb.inv_freq", GPT-2's "h.N.attn.bias" / "h.N.attn.masked_bias".
    /// </summary>
    protected internal virtual System.Text.RegularExpressions.Regex? IgnoredUnexpectedKeys => LegacyBuffers;

    private static readonly System.Text.RegularExpressions.Regex LegacyBuffers = new(
        @"(^|\.)(embeddings\.position_ids|rotary_emb\.inv_freq|h\.\d+\.attn\.(masked_)?bias)$",
        System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>Keys the model expected but the checkpoint lacked (newly initialised) at the last <c>FromPretrained</c>.</summary>
    public IReadOnlyList<string> MissingKeys { get; internal set; } = [];

    /// <summary>Keys skipped because of a shape mismatch (with <see cref="FromPretrainedOptions.IgnoreMismatchedSizes"/>), with both shapes.</summary>
    public IReadOnlyList<string> MismatchedKeys { get; internal set; } = [];

    /// <summary>Keys of the checkpoint the model did not use at the last <c>FromPretrained</c>.</summary>
    public IReadOnlyList<string> UnexpectedKeys { get; internal set; } = [];

    /// <summary>The class name written to config.json <c>architectures</c> (HF's class name).</summary>
    public virtual string ArchitectureName => GetType().Name;

    /// <summary>
    /// Generates continuations of <paramref name="inputIds"/> [B, T] (left-padded when batched) and returns
    /// [B · NumReturnSequences, T + new] int64, as HF <c>generate</c> does. Delegates to <see cref="GenerationLoop"/>.
    /// </summary>
    public Tensor Generate(Tensor inputIds, Tensor? attentionMask, GenerationConfig config) =>
        GenerationLoop.Generate(this, inputIds, attentionMask, config, GenerationConfig);

    private Generation.StaticDecodeHolder? _staticDecode;

    /// <summary>The static-cache decoding state kept between <c>Generate</c> calls (made on first use).</summary>
    internal Generation.StaticDecodeHolder StaticDecodeHolder => LazyInitializer.EnsureInitialized(ref _staticDecode);

    /// <summary>
    /// Why this model cannot decode with a static KV cache (<see cref="GenerationConfig.CacheImplementation"/>), or
    /// null when it can: the causal LMs whose backbone reads the cache's static decode mask say so.
    /// </summary>
    internal virtual string? StaticCacheUnsupported => $"{ArchitectureName} does not support a static KV cache";

    /// <summary>
    /// Frees what generation keeps for the next call: the static KV cache, step buffers and captured CUDA graph of
    /// static-cache decoding (see <see cref="GenerationConfig.CacheImplementation"/>). Also done when the model is
    /// disposed; the next <c>Generate</c> makes them again. Safe to call at any time.
    /// </summary>
    public void ReleaseGenerationCaches() => _staticDecode?.Dispose();

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) ReleaseGenerationCaches();
        base.Dispose(disposing);
    }

    /// <summary>Device of the first parameter (HF <c>model.device</c>).</summary>
    public Device Device => parameters().FirstOrDefault()?.device ?? CPU;

    /// <summary>Dtype of the first floating-point parameter (HF <c>model.dtype</c>).</summary>
    public ScalarType Dtype => parameters().FirstOrDefault(p => p.is_floating_point())?.dtype ?? ScalarType.Float32;

    /// <summary>
    /// The untied output projection over the vocabulary (lm_head) as a <see cref="Linear"/>, or null when there is
    /// none or it is tied to the input embeddings (HF <c>get_output_embeddings()</c>).
    /// </summary>
    public virtual Linear? GetOutputEmbeddings() => null;

    /// <inheritdoc />
    IReadOnlyCollection<string> Peft.Core.Quantization.IQuantizationDefaults.DefaultUnquantizedModules => QuantizationDefaults.For(this);

    /// <summary>Vocabulary-sized biases that follow the embedding size (BERT's MLM bias); empty by default.</summary>
    protected internal virtual IEnumerable<Parameter> VocabularyBiases() => [];

    /// <summary>
    /// Changes the vocabulary size (HF <c>resize_token_embeddings</c>): the input embedding, an untied output
    /// projection and vocabulary biases are cut or grown; new rows are the mean of the old rows (HF's mean
    /// resizing; biases grow with zeros); <c>config.vocab_size</c> is updated. Returns the input embedding.
    /// </summary>
    /// <exception cref="InvalidOperationException">The output projection was replaced (e.g. by a PEFT wrapper).</exception>
    public Embedding ResizeTokenEmbeddings(int newNumTokens)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(newNumTokens, 1);
        var emb = GetInputEmbeddings();
        using (no_grad())
        {
            emb.weight = Grow(emb.weight!, newNumTokens, zeros: false);
            if (GetOutputEmbeddings() is { } head) head.weight = Grow(head.weight, newNumTokens, zeros: false);
            foreach (var bias in VocabularyBiases())
            {
                using var grown = Grow(bias, newNumTokens, zeros: true);
                bias.set_(grown.detach().clone());
            }
        }
        ReplaceConfig(Config.WithVocabSize(newNumTokens));
        return emb;
    }

    private static Parameter Grow(Tensor old, int rows, bool zeros)
    {
        using var scope = NewDisposeScope();
        long keep = Math.Min(rows, old.shape[0]);
        var shape = old.shape.ToArray();
        shape[0] = rows;
        var fresh = zeros || old.shape[0] == 0
            ? torch.zeros(shape, dtype: old.dtype, device: old.device)
            : old.to_type(ScalarType.Float32).mean([0], keepdim: true).to_type(old.dtype).expand(shape).clone();
        fresh.narrow(0, 0, keep).copy_(old.narrow(0, 0, keep));
        return new Parameter(fresh.detach().MoveToOuterDisposeScope(), old.requires_grad);
    }

    /// <summary>Bytes held by parameters and buffers, each shared tensor counted once (HF <c>get_memory_footprint()</c>).</summary>
    public long GetMemoryFootprint()
    {
        var seen = new HashSet<IntPtr>();
        long bytes = 0;
        foreach (var (_, p) in named_parameters())
            if (seen.Add(p.Handle)) bytes += p.numel() * p.ElementSize;
        foreach (var (_, b) in named_buffers())
            if (seen.Add(b.Handle)) bytes += b.numel() * b.ElementSize;
        return bytes;
    }

    /// <summary>Number of parameters (only those with requires_grad when <paramref name="onlyTrainable"/>), shared ones once. HF <c>num_parameters()</c>.</summary>
    public long NumParameters(bool onlyTrainable = false)
    {
        var seen = new HashSet<IntPtr>();
        long n = 0;
        foreach (var (_, p) in named_parameters())
            if ((!onlyTrainable || p.requires_grad) && seen.Add(p.Handle)) n += p.numel();
        return n;
    }

    /// <summary>
    /// Writes <c>config.json</c>, <c>model.safetensors</c> (HF key names, tied weights once, metadata format=pt)
    /// and, for generative models, <c>generation_config.json</c> into <paramref name="dir"/>. HF <c>save_pretrained</c>.
    /// Files are written atomically.
    /// </summary>
    public void SavePretrained(string dir)
    {
        ArgumentException.ThrowIfNullOrEmpty(dir);
        Directory.CreateDirectory(dir);
        var sd = state_dict();
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using (var scope = NewDisposeScope())
        {
            foreach (var (k, v) in sd.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                tensors.Add(new(k, v.device.type == DeviceType.CPU && v.is_contiguous() ? v.detach() : v.detach().cpu().contiguous()));
            SafetensorsWriter.Save(Path.Combine(dir, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        var dtypeName = sd.Values.FirstOrDefault(t => t.is_floating_point())?.dtype switch
        {
            ScalarType.Float16 => "float16",
            ScalarType.BFloat16 => "bfloat16",
            ScalarType.Float64 => "float64",
            _ => "float32",
        };
        var ext = Config.ExtensionData;
        if (ext is not null && ext.ContainsKey("torch_dtype"))
        {
            ext = new Dictionary<string, JsonElement>(ext);
            ext.Remove("torch_dtype");   // superseded by "dtype", which now states the saved dtype
        }
        ext = SavedQuantizationConfig.ForSave(this, ext);
        var cfg = Config with { Architectures = [ArchitectureName], Dtype = dtypeName, ExtensionData = ext };
        cfg.Save(dir);
        if (CanGenerate) GenerationConfig.SavePretrained(dir);
    }

    /// <summary>Called by <c>FromConfig</c> after the HF-style random initialisation (zeroes padding rows, scales GPT-2 residual projections).</summary>
    protected internal virtual void AfterInit()
    {
    }

    /// <summary>True for models with an LM head that <see cref="Generate"/> can drive (HF <c>can_generate()</c>).</summary>
    public virtual bool CanGenerate => false;

    /// <inheritdoc />
    public bool IsGradientCheckpointing => _gradientCheckpointing;

    /// <summary>
    /// Turns gradient checkpointing on for this model and every <see cref="PreTrainedModel"/> inside it (the backbone of
    /// a head model), HF <c>gradient_checkpointing_enable()</c>. In training mode with autograd on, each transformer
    /// layer then keeps only its inputs and is recomputed in backward (same dropout masks), and caching is off as in HF
    /// (use_cache creates no cache; a given prefix cache is attended to but not extended). Gradients reach trainable
    /// parameters inside the layers even when the embeddings are frozen (LoRA), so no <c>enable_input_require_grads()</c>
    /// is needed. Eval mode and <c>no_grad</c> forwards are unaffected.
    /// </summary>
    public void GradientCheckpointingEnable() => SetGradientCheckpointing(true);

    private nn.HookableModule<Func<nn.Module<Tensor, Tensor>, Tensor, Tensor>, Func<nn.Module<Tensor, Tensor>, Tensor, Tensor, Tensor>>.HookRemover? _inputGradsHook;

    /// <inheritdoc />
    public bool InputRequireGrads => _inputGradsHook is not null;

    /// <summary>
    /// HF <c>enable_input_require_grads()</c>: a forward hook on <see cref="GetInputEmbeddings"/> marks its output as
    /// requiring grad, so that the embeddings of a frozen model carry gradients (PEFT enables it with gradient
    /// checkpointing in <c>prepare_model_for_kbit_training</c>). The models call the embedding through <c>call</c>, so
    /// the hook runs on every forward.
    /// </summary>
    public void EnableInputRequireGrads()
    {
        _inputGradsHook ??= GetInputEmbeddings().register_forward_hook((_, _, output) => output.requires_grad_(true));
    }

    /// <summary>HF <c>disable_input_require_grads()</c>: removes the hook.</summary>
    public void DisableInputRequireGrads()
    {
        _inputGradsHook?.remove();
        _inputGradsHook = null;
    }

    /// <summary>Turns gradient checkpointing off (HF <c>gradient_checkpointing_disable()</c>).</summary>
    public void GradientCheckpointingDisable() => SetGradientCheckpointing(false);

    private void SetGradientCheckpointing(bool on)
    {
        _gradientCheckpointing = on;
        foreach (var (_, m) in named_modules())
            if (m is PreTrainedModel inner) inner._gradientCheckpointing = on;
    }

    /// <summary>Whether this forward recomputes its layers in backward: checkpointing on, training mode, autograd enabled.</summary>
    protected internal bool CheckpointsLayers => _gradientCheckpointing && training && is_grad_enabled();

    /// <summary>Applies a config change that does not alter shapes (e.g. label names). Used by the loaders.</summary>
    internal void ReplaceConfig(PretrainedConfig config) => Config = config;


    /// <summary>
    /// Copies the tensors of the checkpoint in <paramref name="dir"/> into this model (strict names and shapes, HF
    /// base-model prefix added or removed as needed). Returns the missing and unexpected keys.
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor's shape differs from the model's (unless <paramref name="ignoreMismatchedSizes"/>, which reports it as missing).</exception>
    public (IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected) LoadWeights(string dir, bool ignoreMismatchedSizes = false) =>
        LoadWeights(dir, ignoreMismatchedSizes, plan: null);

    /// <summary>
    /// Streams the checkpoint into the model one tensor at a time. With a <paramref name="plan"/>, each tensor is read
    /// in the plan's dtype on its device and put in place of the model's parameter (which may live on the meta device
    /// and hold no storage), and quantisation targets are replaced by their quantised layer as their weight arrives;
    /// without one, tensors are copied into the existing parameters.
    /// </summary>
    internal (IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected) LoadWeights(string dir, bool ignoreMismatchedSizes, LoadPlan? plan)
    {
        if (!File.Exists(Path.Combine(dir, "model.safetensors")) && !File.Exists(Path.Combine(dir, "model.safetensors.index.json"))
            && (File.Exists(Path.Combine(dir, "pytorch_model.bin")) || File.Exists(Path.Combine(dir, "pytorch_model.bin.index.json"))))
            throw new NotSupportedException(
                $"{dir} holds only pytorch_model.bin (a pickle checkpoint), which cannot be read safely; convert it to safetensors with the Python stack (model.save_pretrained(dir, safe_serialization=True)).");
        using var ckpt = SafetensorsCheckpoint.OpenFolder(dir, "model");
        var sd = state_dict();
        var prefix = BaseModelPrefix + ".";
        bool modelHasPrefix = sd.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));
        bool fileHasPrefix = ckpt.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));
        Func<string, string> addPrefix = k => k;
        if (modelHasPrefix && !fileHasPrefix) addPrefix = k => sd.ContainsKey(prefix + k) || sd.ContainsKey(prefix + Legacy(k)) ? prefix + k : k;
        else if (!modelHasPrefix && fileHasPrefix) addPrefix = k => k.StartsWith(prefix, StringComparison.Ordinal) ? k[prefix.Length..] : k;
        // HF renames legacy TF-era LayerNorm names on load (bert-base-cased stores "LayerNorm.gamma"/"LayerNorm.beta").
        static string Legacy(string k) =>
            k.EndsWith("LayerNorm.gamma", StringComparison.Ordinal) ? k[..^"gamma".Length] + "weight"
            : k.EndsWith("LayerNorm.beta", StringComparison.Ordinal) ? k[..^"beta".Length] + "bias" : k;
        string? Map(string k)
        {
            var m = addPrefix(k);
            return sd.ContainsKey(m) ? m : Legacy(m);
        }
        var ignore = IgnoredUnexpectedKeys;
        var fileKeyOf = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var fk in ckpt.Keys) fileKeyOf.TryAdd(Map(fk) ?? fk, fk);
        var owners = plan is null ? null : ParameterOwners();
        using var reader = new CheckpointReader(ckpt);

        var loaded = new HashSet<string>(StringComparer.Ordinal);
        var consumed = new HashSet<string>(StringComparer.Ordinal);                // file keys read into pre-quantised layers
        var unexpected = new List<string>();
        var mismatched = new List<string>();
        var tied = TiedCheckpointKeys;
        using (no_grad())
        {
            foreach (var fileKey in ckpt.Keys)
            {
                var key = Map(fileKey);
                if (key is null || !sd.TryGetValue(key, out var target))
                {
                    if (!tied.Contains(fileKey) && (key is null || !tied.Contains(key)) && ignore?.IsMatch(fileKey) != true) unexpected.Add(fileKey);
                    continue;
                }
                if (loaded.Contains(key)) continue;                                  // read with its layer's weight
                if (plan?.Quantizer is { Prequantized: true } pq && owners![key] is var own && pq.IsTarget(own.Path, own.Module))
                {
                    consumed.UnionWith(PrequantizedLayers.Load(this, reader, ckpt.Keys, Map, own.Path, own.Module, plan, loaded, dir));
                    LoadObservers.TensorLoaded.Value?.Invoke(fileKey);
                    continue;
                }
                var info = ckpt.GetInfo(fileKey);
                if (!info.Shape.SequenceEqual(target.shape) && ignoreMismatchedSizes)
                {
                    mismatched.Add($"{key}: found shape [{string.Join(", ", info.Shape)}] in the checkpoint and [{string.Join(", ", target.shape)}] in the model");
                    continue;
                }
                if (!info.Shape.SequenceEqual(target.shape))
                    throw new InvalidDataException(
                        $"{dir}: tensor '{fileKey}' has shape [{string.Join(", ", info.Shape)}] but {ArchitectureName} expects [{string.Join(", ", target.shape)}] for '{key}'.");
                if (plan is null)
                {
                    using var src = ckpt.GetTensor(fileKey, target.dtype, target.device);
                    target.copy_(src);
                    loaded.Add(key);
                    continue;
                }
                var (path, module, local) = owners![key];
                if (plan.Quantizer?.IsTarget(path, module) == true)
                {
                    QuantizeFromCheckpoint(reader, fileKeyOf, path, module, plan, loaded, dir);
                    // The quantiser's per-chunk temporaries were freed, but glibc keeps the pages of free blocks that
                    // sit below the new packed tensors resident (the arena's top cannot shrink past them): without
                    // this, a 4-bit load's RSS grew by ~10× the quantised size. malloc_trim returns those pages.
                    Peft.Core.Torch.NativeHeap.Trim();
                    LoadObservers.TensorLoaded.Value?.Invoke(fileKey);
                    continue;
                }
                using (var src = reader.GetTensor(fileKey, plan.DtypeFor(target), plan.DeviceFor(path)))
                    ParameterSwap.Replace(module, local, src);
                loaded.Add(key);
                LoadObservers.TensorLoaded.Value?.Invoke(fileKey);
            }
        }
        unexpected.RemoveAll(consumed.Contains);
        var missing = sd.Keys.Where(k => !loaded.Contains(k)).ToList();
        MissingKeys = missing;
        UnexpectedKeys = unexpected;
        MismatchedKeys = mismatched;
        return (missing, unexpected);
    }

    /// <summary>
    /// After a streaming load: parameters the checkpoint did not provide (still on the meta device) get real storage,
    /// zero-filled, in the plan's dtype and device; float buffers follow too. Their values are then set by
    /// <see cref="InitializeKeys"/> (HF init for the module types it knows; zero otherwise, e.g. BERT's MLM bias).
    /// </summary>
    internal void MaterializeRest(LoadPlan plan)
    {
        using var _ = no_grad();
        foreach (var (name, m) in named_modules())
        {
            var device = plan.DeviceFor(name);
            foreach (var (pn, p) in m.named_parameters(recurse: false).ToList())
            {
                var dtype = plan.DtypeFor(p);
                if (p.device.type != DeviceType.META && p.dtype == dtype && SameDevice(p.device, device)) continue;
                using var fresh = p.device.type == DeviceType.META
                    ? zeros(p.shape, dtype: dtype, device: device)                      // a module InitWeights does not know keeps 0 (HF's bias init)
                    : p.detach().to(dtype, device);
                ParameterSwap.Replace(m, pn, fresh);
            }
        }
        foreach (var b in buffers())
        {
            if (b.device.type == DeviceType.META)
                throw new InvalidOperationException($"{ArchitectureName}: a buffer is still on the meta device after loading; its module must create it on the load device.");
        }
        foreach (var (name, m) in named_modules())
        {
            var device = plan.DeviceFor(name);
            if (m.named_buffers(recurse: false).Any(b => !SameDevice(b.buffer.device, device))) m.to(device);
        }
    }

    private static bool SameDevice(Device a, Device b) => a.type == b.type && (a.type != DeviceType.CUDA || Math.Max(a.index, 0) == Math.Max(b.index, 0));

    /// <summary>Every parameter's state-dict key → (module path, module, local name).</summary>
    private Dictionary<string, (string Path, nn.Module Module, string Local)> ParameterOwners()
    {
        var owners = new Dictionary<string, (string, nn.Module, string)>(StringComparer.Ordinal);
        foreach (var (name, m) in named_modules())
        {
            var pre = name.Length == 0 ? "" : name + ".";
            foreach (var (pn, _) in m.named_parameters(recurse: false)) owners.TryAdd(pre + pn, (name, m, pn));
        }
        return owners;
    }

    private void QuantizeFromCheckpoint(CheckpointReader ckpt, Dictionary<string, string> fileKeyOf, string path, nn.Module module,
        LoadPlan plan, HashSet<string> loaded, string dir)
    {
        var pre = path + ".";
        string File(string local) => fileKeyOf.TryGetValue(pre + local, out var fk)
            ? fk : throw new InvalidDataException($"{dir}: '{pre + local}' is missing from the checkpoint; it is needed to quantize '{path}'.");
        bool hasBias = module.named_parameters(recurse: false).Any(p => p.name == "bias");
        using var scope = NewDisposeScope();
        var device = plan.DeviceFor(path);
        var weight = ckpt.GetTensor(File("weight"), null, device);
        Tensor? bias = hasBias && fileKeyOf.ContainsKey(pre + "bias") ? ckpt.GetTensor(File("bias"), plan.Dtype, device) : null;
        var quantized = plan.Quantizer!.Quantize(module, weight, bias);
        var (parent, child, _) = Peft.Core.Tuners.ModuleSurgery.GetParent(this, path);
        Peft.Core.Tuners.ModuleSurgery.ReplaceChild(parent, child, quantized).Dispose();
        loaded.Add(pre + "weight");
        if (bias is not null || !hasBias) loaded.Add(pre + "bias");
    }

    /// <summary>Re-initialises the modules whose parameters are in <paramref name="keys"/> (HF init of newly created weights).</summary>
    internal void InitializeKeys(IReadOnlyCollection<string> keys)
    {
        if (keys.Count == 0) return;
        var modules = new HashSet<nn.Module>(ReferenceEqualityComparer.Instance);
        foreach (var (name, m) in named_modules())
        {
            var pre = name.Length == 0 ? "" : name + ".";
            foreach (var (pn, _) in m.named_parameters(recurse: false))
                if (keys.Contains(pre + pn)) modules.Add(m);
        }
        Models.ModelOps.InitWeights(this, Config.InitStd, m => modules.Contains(m));
    }
}
