namespace Peft.Core;

/// <summary>
/// How <see cref="PeftModel.AddWeightedAdapter"/> combines adapters (PEFT <c>add_weighted_adapter(combination_type=...)</c>).
/// Only the combinations this library implements are listed; PEFT's TIES / DARE / magnitude-prune variants are not.
/// </summary>
public enum CombinationType
{
    /// <summary>"svd": the weighted sum of the full deltas, re-factored to a rank by truncated SVD (LoRA; PEFT's default).</summary>
    Svd,
    /// <summary>"linear": weighted sum of the factors (LoRA: all adapters need the same rank; IA3's only combination).</summary>
    Linear,
    /// <summary>"cat": the factors concatenated (LoRA: rank = the sum of the ranks; exact).</summary>
    Cat,
}
