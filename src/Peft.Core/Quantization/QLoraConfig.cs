using System.Text.Json.Serialization;
using Peft.Core.Quantization;
using static TorchSharp.torch;

namespace Peft.Core;

/// <summary>
/// QLoRA (the design card's name): a <see cref="LoraConfig"/> plus the 4-bit settings of its base model.
/// <c>PeftModel.GetPeftModel(model, qloraConfig)</c> first quantizes the model's linear layers in place — every
/// Linear / Conv1D except the output head (or, when given, <see cref="SkipModules"/> instead), layers already quantized are kept — exactly as
/// loading with <c>BitsAndBytesConfig { LoadIn4Bit = true, ... }</c> would, then attaches LoRA with adapters in
/// <see cref="ComputeDtype"/>. The 4-bit settings are not written: the adapter folder is an ordinary PEFT
/// <c>peft_type: "LORA"</c> adapter that loads on a full-precision base in C# and in Python.
/// </summary>
public sealed record QLoraConfig : LoraConfig
{
    /// <summary>HF <c>bnb_4bit_quant_type</c>: "nf4" (QLoRA's default here) or "fp4".</summary>
    [JsonIgnore] public string QuantType { get; init; } = "nf4";

    /// <summary>HF <c>bnb_4bit_use_double_quant</c> (QLoRA: true).</summary>
    [JsonIgnore] public bool UseDoubleQuant { get; init; } = true;

    /// <summary>HF <c>bnb_4bit_compute_dtype</c> (QLoRA uses bfloat16 on GPUs; float32 by default here, fast on CPUs).</summary>
    [JsonIgnore] public ScalarType ComputeDtype { get; init; } = ScalarType.Float32;

    /// <summary>4-bit block size (bnb 64).</summary>
    [JsonIgnore] public int Blocksize { get; init; } = 64;

    /// <summary>HF <c>llm_int8_skip_modules</c>: module-name patterns kept in full precision instead of the defaults (list "lm_head" too to keep the head), as HF.</summary>
    [JsonIgnore] public IReadOnlyList<string>? SkipModules { get; init; }

    /// <summary>The quantisation these settings describe.</summary>
    public QuantizationSettings ToSettings() =>
        new(FourBitFormat.FromName(QuantType), Blocksize, UseDoubleQuant, ComputeDtype, SkipModules);

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        FourBitFormat.FromName(QuantType);
        if (ComputeDtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
            throw new ArgumentException($"QLoraConfig.ComputeDtype must be float32, float16 or bfloat16, got {ComputeDtype}.");
        if (Blocksize is not (32 or 64 or 128 or 256 or 512 or 1024 or 2048 or 4096))
            throw new ArgumentException($"QLoraConfig.Blocksize {Blocksize} is not a power of two in 32..4096.");
    }

    /// <summary>Quantizes the model's linear layers in place (those not quantized yet); see the type's remarks.</summary>
    public override void PrepareModel(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        Validate();
        ModelQuantizer.QuantizeInPlace(model, ToSettings());
    }
}
