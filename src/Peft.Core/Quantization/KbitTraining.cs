using Microsoft.Extensions.Logging;
using Peft.Core.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core;

/// <summary>PEFT's <c>prepare_model_for_kbit_training</c> for models with quantized linears.</summary>
public static class KbitTraining
{
    /// <summary>
    /// Prepares a (quantized) model for adapter training, as PEFT does: every base parameter is frozen; float16 /
    /// bfloat16 parameters outside quantized layers (norms, embeddings, heads) are cast to float32 for stability (the
    /// bias of a quantized layer keeps its dtype — PEFT casts it too — and is used in the compute dtype); with
    /// <paramref name="useGradientCheckpointing"/>, checkpointing is turned on through <see cref="IGradientCheckpointing"/>
    /// (a model that does not implement it gets a warning, as HF warns for models without checkpointing support).
    /// Returns the same model.
    /// </summary>
    /// <remarks>
    /// PEFT also calls <c>enable_input_require_grads()</c> so that reentrant checkpointing sees an input that requires
    /// grad while the embedding is frozen. TorchSharp runs forward hooks only through <c>Module.call</c> while the model
    /// code calls <c>forward</c> directly, so that part is the checkpointing implementation's: it must keep checkpointed
    /// segments differentiable with respect to the adapters when their input does not require grad.
    /// </remarks>
    public static T PrepareModelForKbitTraining<T>(T model, bool useGradientCheckpointing = true, ILogger? logger = null) where T : nn.Module
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var p in model.parameters()) p.requires_grad = false;
        var quantizedParts = new HashSet<nn.Module>(model.modules().Where(m => m is IQuantizedLinear)
            .SelectMany(m => m.modules().Prepend(m)), ReferenceEqualityComparer.Instance);
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
            if (model is IGradientCheckpointing gc) gc.GradientCheckpointingEnable();
            else logger?.LogWarning("{Model} does not support gradient checkpointing (IGradientCheckpointing); training without it.", model.GetType().Name);
        }
        return model;
    }
}
