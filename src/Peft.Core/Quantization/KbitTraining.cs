using Microsoft.Extensions.Logging;
using Peft.Core.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core;

/// <summary>PEFT's <c>prepare_model_for_kbit_training</c> for models with quantized linears.</summary>
public static class KbitTraining
{
    /// <summary>
    /// Prepares a (quantized) model for adapter training, as PEFT 0.21 does: every parameter is frozen; every float16 /
    /// bfloat16 parameter but the packed 4-bit weights is cast to float32 (norms, embeddings, heads and the biases of
    /// quantized layers); with <paramref name="useGradientCheckpointing"/> and quantized layers present,
    /// <see cref="IInputRequireGrads.EnableInputRequireGrads"/> is called (PEFT does so for kbit models with reentrant
    /// checkpointing) and checkpointing is turned on through <see cref="IGradientCheckpointing"/> (a model without it
    /// gets a warning). Returns the same model.
    /// </summary>
    public static T PrepareModelForKbitTraining<T>(T model, bool useGradientCheckpointing = true, ILogger? logger = null) where T : nn.Module
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var p in model.parameters()) p.requires_grad = false;
        var quantized = model.modules().OfType<IQuantizedLinear>().ToList();
        var quantizedParts = new HashSet<nn.Module>(quantized.Cast<nn.Module>().SelectMany(m => m.modules().Prepend(m)), ReferenceEqualityComparer.Instance);
        foreach (var q in quantized) q.CastBias(ScalarType.Float32);
        foreach (var m in model.modules().ToList())
        {
            if (quantizedParts.Contains(m) || m.named_children().Any()) continue;   // leaf modules outside quantized layers
            if (m.parameters(recurse: false).Any(p => p.dtype is ScalarType.Float16 or ScalarType.BFloat16))
            {
                m.to(ScalarType.Float32);
                foreach (var p in m.parameters(recurse: false)) p.requires_grad = false;
            }
        }
        if (useGradientCheckpointing)
        {
            if (quantized.Count > 0 && model is IInputRequireGrads irg) irg.EnableInputRequireGrads();
            if (model is IGradientCheckpointing gc) gc.GradientCheckpointingEnable();
            else logger?.LogWarning("{Model} does not support gradient checkpointing (IGradientCheckpointing); training without it.", model.GetType().Name);
        }
        return model;
    }
}
