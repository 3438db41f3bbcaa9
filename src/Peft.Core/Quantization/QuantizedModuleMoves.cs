using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>The rule both quantised linears apply to <c>to(dtype)</c>: packed integer data never changes dtype.</summary>
internal static class QuantizedModuleMoves
{
    public static InvalidOperationException DtypeCast(string module, ScalarType dtype) => new(
        $"{module}: casting a quantized layer to {dtype} is not supported — its packed integer weight cannot change dtype " +
        "(HF raises the same for .to(dtype) on a bitsandbytes model). Choose the compute dtype when quantizing " +
        "(BitsAndBytesConfig.Bnb4BitComputeDtype), or dequantize first (MergeAndUnload / Dequantize).");
}
