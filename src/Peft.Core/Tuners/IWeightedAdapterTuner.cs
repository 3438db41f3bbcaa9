namespace Peft.Core.Tuners;

/// <summary>
/// A tuner that can build a new adapter as a weighted combination of existing ones (PEFT <c>add_weighted_adapter</c>;
/// LoRA). <see cref="PeftModel.AddWeightedAdapter"/> forwards to it.
/// </summary>
public interface IWeightedAdapterTuner
{
    /// <summary>
    /// Adds <paramref name="adapterName"/> combined from <paramref name="adapters"/> with <paramref name="weights"/>
    /// (one per adapter) by <paramref name="combinationType"/>; it is not made active and does not train. Returns its config.
    /// </summary>
    PeftConfig AddWeightedAdapter(IReadOnlyList<string> adapters, IReadOnlyList<double> weights, string adapterName, CombinationType combinationType);
}
