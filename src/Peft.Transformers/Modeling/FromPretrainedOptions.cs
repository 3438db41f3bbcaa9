using Microsoft.Extensions.Logging;
using TorchSharp;

namespace Peft.Transformers;

/// <summary>Options of <c>AutoModel*.FromPretrained</c> (HF <c>from_pretrained</c> keyword arguments).</summary>
public sealed record FromPretrainedOptions
{
    /// <summary>
    /// Dtype of the parameters after loading (HF <c>dtype</c>). null = "auto", transformers 5's default: the config's
    /// <c>dtype</c> (older files: <c>torch_dtype</c>), else the checkpoint's first floating-point tensor, else float32.
    /// Weights are converted one tensor at a time as they are read; no float32 copy of the model is made.
    /// </summary>
    public torch.ScalarType? Dtype { get; init; }

    /// <summary>Device to load onto (HF <c>device_map</c> with one device); null = CPU (or <see cref="DeviceMap"/>).</summary>
    public torch.Device? Device { get; init; }

    /// <summary>
    /// HF <c>device_map</c> as a string (see <see cref="Transformers.DeviceMap"/>); exclusive with <see cref="Device"/>:
    /// "cpu", "cuda", "cuda:N" (one device), or "auto" / "balanced" / "sequential": decoder layers placed over the GPUs
    /// in order (balanced across them for "auto" / "balanced"), the layers that do not fit spilling to the CPU; each
    /// tensor is read straight onto its device. Without a GPU these load on the CPU.
    /// </summary>
    public string? DeviceMap { get; init; }

    /// <summary>
    /// HF <c>max_memory</c> for a planned <see cref="DeviceMap"/>: bytes of weights per device, keys "cuda:N" (or "N")
    /// and "cpu". null = 90 % of each visible GPU's free memory and an unlimited CPU. Only the GPUs named are used.
    /// </summary>
    public IReadOnlyDictionary<string, long>? MaxMemory { get; init; }

    /// <summary>Number of classification labels for a new or replaced head (HF <c>num_labels</c>).</summary>
    public int? NumLabels { get; init; }

    /// <summary>Label names for the head (HF <c>id2label</c>); sets <see cref="NumLabels"/> when that is null.</summary>
    public IReadOnlyDictionary<int, string>? Id2Label { get; init; }

    /// <summary>Hub revision: a branch/tag name under <c>refs/</c> or a commit hash (HF <c>revision</c>); null = "main".</summary>
    public string? Revision { get; init; }

    /// <summary>Only use files already on disk, never download (HF <c>local_files_only</c>; HF_HUB_OFFLINE=1 does the same).</summary>
    public bool LocalFilesOnly { get; init; }

    /// <summary>Hub access token sent as <c>Authorization: Bearer</c> (HF <c>token</c>); null = HF_TOKEN or $HF_HOME/token.</summary>
    public string? Token { get; init; }

    /// <summary>Hub cache folder (HF <c>cache_dir</c>); null = HF_HUB_CACHE, else $HF_HOME/hub.</summary>
    public string? CacheDir { get; init; }

    /// <summary>Hub base URL, e.g. a mirror (HF <c>endpoint</c>); null = HF_ENDPOINT, else https://huggingface.co.</summary>
    public string? Endpoint { get; init; }

    /// <summary>
    /// Quantized loading (HF <c>quantization_config</c>): every linear / Conv1D layer except the output head (or
    /// <see cref="BitsAndBytesConfig.LlmInt8SkipModules"/> when given) becomes a <c>Linear4bit</c> / <c>Linear8bit</c>, quantised as its
    /// weight is read. Other parameters load in <see cref="Dtype"/>.
    /// </summary>
    public BitsAndBytesConfig? Quantization { get; init; }

    /// <summary>
    /// Skip checkpoint tensors whose shape differs from the model's (e.g. a classifier with another label count)
    /// and initialise those weights instead of failing (HF <c>ignore_mismatched_sizes</c>).
    /// </summary>
    public bool IgnoreMismatchedSizes { get; init; }

    /// <summary>Receives the "newly initialized" / "not used" warnings; null = no logging.</summary>
    public ILogger? Logger { get; init; }
}

/// <summary>bitsandbytes quantization settings (HF <c>BitsAndBytesConfig</c>; defaults as HF's).</summary>
public sealed record BitsAndBytesConfig
{
    /// <summary>HF <c>load_in_4bit</c>.</summary>
    public bool LoadIn4Bit { get; init; }
    /// <summary>HF <c>load_in_8bit</c>.</summary>
    public bool LoadIn8Bit { get; init; }
    /// <summary>HF <c>bnb_4bit_quant_type</c>: "nf4" or "fp4".</summary>
    public string Bnb4BitQuantType { get; init; } = "fp4";
    /// <summary>HF <c>bnb_4bit_use_double_quant</c>.</summary>
    public bool Bnb4BitUseDoubleQuant { get; init; }
    /// <summary>HF <c>bnb_4bit_compute_dtype</c>: the dtype 4-bit layers dequantise into and multiply in.</summary>
    public torch.ScalarType Bnb4BitComputeDtype { get; init; } = torch.ScalarType.Float32;
    /// <summary>HF <c>bnb_4bit_quant_storage</c>: the dtype holding the packed codes; only uint8 (the default) is supported.</summary>
    public torch.ScalarType Bnb4BitQuantStorage { get; init; } = torch.ScalarType.Byte;
    /// <summary>
    /// HF <c>llm_int8_skip_modules</c>: module-name patterns kept in full precision (a regex matched at the start of the
    /// module path, or a suffix of it). When set they replace the defaults, as in transformers 5: list "lm_head" too to
    /// keep the head unquantised. null = the defaults (tied weights, the last parameter's module, the output embeddings).
    /// </summary>
    public IReadOnlyList<string>? LlmInt8SkipModules { get; init; }
    /// <summary>Elements per 4-bit block (bnb <c>blocksize</c>, 64; not an HF config key): 32, 64, ..., 4096.</summary>
    public int Bnb4BitBlocksize { get; init; } = 64;
    /// <summary>
    /// HF <c>llm_int8_threshold</c> (6.0): 8-bit layers multiply the input columns holding an element with |x| ≥ this
    /// in floating point (LLM.int8's outlier decomposition); 0 turns it off.
    /// </summary>
    public double LlmInt8Threshold { get; init; } = 6.0;

    /// <summary>The model-independent quantisation settings (after <see cref="Validate"/>).</summary>
    public Peft.Core.Quantization.QuantizationSettings ToSettings()
    {
        Validate();
        return new Peft.Core.Quantization.QuantizationSettings(
            LoadIn4Bit ? Peft.Core.Quantization.FourBitFormat.FromName(Bnb4BitQuantType) : null,
            Bnb4BitBlocksize, Bnb4BitUseDoubleQuant, Bnb4BitComputeDtype, LlmInt8SkipModules, LlmInt8Threshold);
    }

    /// <summary>Checks the combination (HF <c>BitsAndBytesConfig.post_init</c>).</summary>
    /// <exception cref="ArgumentException">Both or unsupported settings, named with the value.</exception>
    public void Validate()
    {
        if (LoadIn4Bit && LoadIn8Bit)
            throw new ArgumentException("BitsAndBytesConfig: load_in_4bit and load_in_8bit are both true; choose one.");
        if (Bnb4BitQuantType is not ("nf4" or "fp4"))
            throw new ArgumentException($"BitsAndBytesConfig.Bnb4BitQuantType (bnb_4bit_quant_type) must be \"nf4\" or \"fp4\", got '{Bnb4BitQuantType}'.");
        if (Bnb4BitComputeDtype is not (torch.ScalarType.Float32 or torch.ScalarType.Float16 or torch.ScalarType.BFloat16))
            throw new ArgumentException($"BitsAndBytesConfig.Bnb4BitComputeDtype (bnb_4bit_compute_dtype) must be float32, float16 or bfloat16, got {Bnb4BitComputeDtype}.");
        if (Bnb4BitQuantStorage != torch.ScalarType.Byte)
            throw new ArgumentException($"BitsAndBytesConfig.Bnb4BitQuantStorage (bnb_4bit_quant_storage) {Bnb4BitQuantStorage} is not supported; only uint8 is.");
        if (!(LlmInt8Threshold >= 0) || double.IsInfinity(LlmInt8Threshold))
            throw new ArgumentException($"BitsAndBytesConfig.LlmInt8Threshold (llm_int8_threshold) must be a finite number ≥ 0, got {LlmInt8Threshold}.");
        if (Bnb4BitBlocksize is not (32 or 64 or 128 or 256 or 512 or 1024 or 2048 or 4096))
            throw new ArgumentException($"BitsAndBytesConfig.Bnb4BitBlocksize {Bnb4BitBlocksize} is not a power of two in 32..4096.");
    }
}
