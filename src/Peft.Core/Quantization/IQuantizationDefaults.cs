namespace Peft.Core.Quantization;

/// <summary>
/// A model that names the modules bitsandbytes quantisation keeps in full precision by default (HF
/// <c>get_keys_to_not_convert</c>: both sides of tied weights, the last parameter's module, the output embeddings).
/// Implemented by <c>Peft.Transformers.PreTrainedModel</c>; for any other module <see cref="ModelQuantizer"/> uses the
/// last named parameter alone.
/// </summary>
public interface IQuantizationDefaults
{
    /// <summary>Module names (patterns for <see cref="ModelQuantizer.IsSkipped"/>) kept in full precision when no skip list is given.</summary>
    IReadOnlyCollection<string> DefaultUnquantizedModules { get; }
}
