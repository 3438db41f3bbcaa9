using Microsoft.Extensions.Logging;
using TorchSharp;

namespace Peft.Transformers;

/// <summary>Options of <c>AutoModel*.FromPretrained</c> (HF <c>from_pretrained</c> keyword arguments).</summary>
public sealed record FromPretrainedOptions
{
    /// <summary>Dtype of the parameters after loading (HF <c>dtype</c>); null = float32.</summary>
    public torch.ScalarType? Dtype { get; init; }

    /// <summary>Device to load onto (HF <c>device_map</c> with one device); null = CPU.</summary>
    public torch.Device? Device { get; init; }

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

    /// <summary>Quantized loading (HF <c>quantization_config</c>); not implemented yet: setting it throws <see cref="NotSupportedException"/>.</summary>
    public BitsAndBytesConfig? Quantization { get; init; }

    /// <summary>
    /// Skip checkpoint tensors whose shape differs from the model's (e.g. a classifier with another label count)
    /// and initialise those weights instead of failing (HF <c>ignore_mismatched_sizes</c>).
    /// </summary>
    public bool IgnoreMismatchedSizes { get; init; }

    /// <summary>Receives the "newly initialized" / "not used" warnings; null = no logging.</summary>
    public ILogger? Logger { get; init; }
}

/// <summary>bitsandbytes quantization settings (HF <c>BitsAndBytesConfig</c>). Data only for now.</summary>
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
    /// <summary>HF <c>bnb_4bit_compute_dtype</c>.</summary>
    public torch.ScalarType Bnb4BitComputeDtype { get; init; } = torch.ScalarType.Float32;
}
