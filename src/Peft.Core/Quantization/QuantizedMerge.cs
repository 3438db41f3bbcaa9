using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>
/// Merging LoRA into a quantized base (PEFT's bnb <c>Linear4bit.merge</c>): the base weight is dequantized, the
/// delta added, and the result either kept in full precision (a plain <c>nn.Linear</c> comes back) or requantized
/// (the layer stays 4-/8-bit, and PEFT's rounding warning is logged).
/// </summary>
public static class QuantizedMerge
{
    /// <summary>PEFT's warning when a merge is requantized.</summary>
    public const string RoundingWarning = "Merge lora module to 4-bit linear may get different generations due to rounding errors.";

    /// <summary>
    /// <see cref="PeftModel.MergeAndUnload"/> for a model with quantized linears. With <paramref name="requantize"/>
    /// false (default) every quantized layer — merged or not — is returned as a full-precision <c>nn.Linear</c> holding
    /// dequantize(W) + ΔW exactly; with true, merged layers are requantized in place and the warning is logged.
    /// </summary>
    public static nn.Module MergeAndUnload(PeftModel peftModel, bool requantize = false, ILogger? logger = null, bool safeMerge = false)
    {
        ArgumentNullException.ThrowIfNull(peftModel);
        var quantized = peftModel.modules().OfType<IQuantizedLinear>().ToList();
        if (requantize && quantized.Count > 0) logger?.LogWarning(RoundingWarning);
        foreach (var q in quantized) q.KeepMergedWeightInFullPrecision = !requantize;
        peftModel.MergeAdapter(safeMerge: safeMerge);
        // The unload releases (disposes) each adapter layer together with its base, so the merged quantized bases are
        // turned into their final form first and put back by reference afterwards.
        var final = new Dictionary<nn.Module, nn.Module>(ReferenceEqualityComparer.Instance);
        foreach (var layer in peftModel.modules().OfType<Tuners.ITunerLayer>())
        {
            if (layer.BaseLayer is IQuantizedLinear q)
                final[layer.BaseLayer] = requantize ? (nn.Module)q.CloneLayer() : q.ToLinear();
        }
        var model = peftModel.MergeAndUnload(safeMerge);
        foreach (var (path, module) in model.named_modules().ToList())
        {
            if (!final.TryGetValue(module, out var replacement)) continue;
            var (parent, child, _) = Tuners.ModuleSurgery.GetParent(model, path);
            Tuners.ModuleSurgery.ReplaceChild(parent, child, replacement);
        }
        if (!requantize) ModelQuantizer.Dequantize(model);
        return model;
    }
}
