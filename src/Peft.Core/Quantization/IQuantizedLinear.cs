using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>
/// A linear layer whose weight is stored quantised (<see cref="Linear4bit"/>, <see cref="Linear8bit"/>): what a
/// tuner needs to wrap it (sizes, the dtype adapters should compute in) and to merge into it (the weight
/// dequantised on demand, the bias).
/// </summary>
public interface IQuantizedLinear
{
    /// <summary>Input features (HF <c>in_features</c>).</summary>
    long InFeatures { get; }
    /// <summary>Output features (HF <c>out_features</c>).</summary>
    long OutFeatures { get; }
    /// <summary>The dtype the layer computes in (bnb <c>compute_dtype</c>); adapters on it use this dtype.</summary>
    ScalarType ComputeDtype { get; }
    /// <summary>The bias [out] (full precision), or null.</summary>
    Parameter? Bias { get; }
    /// <summary>The dequantised weight [out, in] in <paramref name="dtype"/>; a new tensor the caller owns.</summary>
    Tensor DequantizeWeight(ScalarType dtype);
}
