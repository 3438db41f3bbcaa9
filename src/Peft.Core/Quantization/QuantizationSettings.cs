using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>
/// How linear layers are quantised (the model-independent part of HF's <c>BitsAndBytesConfig</c>): 4-bit
/// (<see cref="Format"/> not null: NF4 / FP4 with <see cref="Blocksize"/>, optional double quantisation, dequantised
/// into <see cref="ComputeDtype"/>) or LLM.int8 8-bit (<see cref="Format"/> null).
/// </summary>
/// <param name="Format">The 4-bit format, or null for 8-bit.</param>
/// <param name="Blocksize">4-bit block size (bnb 64).</param>
/// <param name="DoubleQuant">Quantise the 4-bit absmax again (bnb <c>compress_statistics</c>).</param>
/// <param name="ComputeDtype">The dtype 4-bit layers compute in (8-bit layers compute in their input's dtype).</param>
/// <param name="SkipModules">Module-name patterns kept in full precision instead of the model's defaults (the output head), as HF <c>llm_int8_skip_modules</c>; null = the defaults (see <see cref="ModelQuantizer"/>).</param>
/// <param name="Int8Threshold">8-bit outlier threshold (HF <c>llm_int8_threshold</c>, 6.0): input columns with |x| ≥ it are multiplied in floating point by <see cref="Linear8bit"/>; 0 = none.</param>
public sealed record QuantizationSettings(FourBitFormat? Format, int Blocksize = 64, bool DoubleQuant = false,
    ScalarType ComputeDtype = ScalarType.Float32, IReadOnlyList<string>? SkipModules = null, double Int8Threshold = 6.0)
{
    /// <summary>NF4 with double quantisation — the QLoRA recipe.</summary>
    public static QuantizationSettings QLoraDefault(ScalarType computeDtype = ScalarType.Float32) => new(FourBitFormat.Nf4, 64, true, computeDtype);

    /// <summary>LLM.int8 row-wise 8-bit.</summary>
    public static QuantizationSettings Int8 { get; } = new((FourBitFormat?)null);
}
