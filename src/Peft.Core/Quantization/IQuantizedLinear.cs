using Peft.Core.Tuners;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>
/// A linear layer whose weight is stored quantised (<see cref="Linear4bit"/>, <see cref="Linear8bit"/>). As an
/// <see cref="IBaseLayerWeight"/> it is wrapped by LoRA's linear factory with no extra dispatch entry: adapters are
/// created in <see cref="IBaseLayerWeight.ComputeDtype"/>, <see cref="IBaseLayerWeight.GetWeight"/> dequantises and
/// <see cref="IBaseLayerWeight.SetWeight"/> requantises (or keeps the merged weight in full precision, see
/// <see cref="KeepMergedWeightInFullPrecision"/>).
/// </summary>
public interface IQuantizedLinear : IBaseLayerWeight
{
    /// <summary>The bias [out] (full precision), or null.</summary>
    Parameter? Bias { get; }
    /// <summary>The dequantised weight [out, in] in <paramref name="dtype"/>; a new tensor the caller owns.</summary>
    Tensor DequantizeWeight(ScalarType dtype);

    /// <summary>
    /// When true, <see cref="IBaseLayerWeight.SetWeight"/> (a merge) keeps the new weight in full precision instead of
    /// requantising it, and forward uses it; <see cref="ToLinear"/> then returns it exactly. Default false (bnb / PEFT
    /// requantise on merge).
    /// </summary>
    bool KeepMergedWeightInFullPrecision { get; set; }

    /// <summary>
    /// Replaces the bias by a copy in <paramref name="dtype"/> (same requires_grad); no-op without a bias or when it
    /// already has that dtype. PEFT's <c>prepare_model_for_kbit_training</c> casts it to float32 (it is a plain
    /// parameter in bnb's layers; only the packed weight is exempt).
    /// </summary>
    void CastBias(ScalarType dtype);

    /// <summary>An independent copy of the layer (packed data, state and bias cloned).</summary>
    IQuantizedLinear CloneLayer();

    /// <summary>A full-precision <c>nn.Linear</c> with this layer's (merged or dequantised) weight and bias, in the original dtype.</summary>
    Linear ToLinear();
}
