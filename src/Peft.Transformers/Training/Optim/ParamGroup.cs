using TorchSharp.Modules;

namespace Peft.Transformers.Optimization;

/// <summary>
/// Parameters that share optimizer settings (torch <c>param_groups</c> entry). The Trainer builds two, as HF's
/// <c>create_optimizer</c> does: one with <see cref="WeightDecay"/> and one without (biases and norm weights).
/// </summary>
/// <param name="Names">Parameter names (model <c>named_parameters()</c> keys), in order.</param>
/// <param name="Params">The parameters, not owned.</param>
/// <param name="WeightDecay">Decoupled weight decay of this group.</param>
public sealed record ParamGroup(IReadOnlyList<string> Names, IReadOnlyList<Parameter> Params, double WeightDecay)
{
    /// <summary>The group's current learning rate, set from the schedule before each step.</summary>
    public double Lr { get; set; }
}
