using System.Text.Json.Nodes;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Transformers.Optimization;

/// <summary>
/// Plain SGD as torch's <c>torch.optim.SGD</c> without momentum (HF <c>optim="sgd"</c>): weight decay is coupled
/// (<c>g += wd · p</c>), then <c>p -= lr · g</c>. No state.
/// </summary>
public sealed class Sgd : TrainerOptimizer
{
    /// <summary>SGD over <paramref name="groups"/>.</summary>
    public Sgd(IReadOnlyList<ParamGroup> groups) : base(groups)
    {
    }

    /// <inheritdoc />
    public override string Name => "sgd";

    /// <inheritdoc />
    protected override void Update(Tensor param, Tensor grad, ParamGroup group, Dictionary<string, Tensor> state)
    {
        var alpha = UpdateFactor.Of(-group.Lr, param, "-lr", group.Lr);   // checked before anything changes
        var g = group.WeightDecay != 0 ? grad.add(param, HeldScalars.Of(group.WeightDecay)) : grad;
        param.add_(g, alpha);
    }

    /// <inheritdoc />
    protected override JsonObject Settings() => new() { ["momentum"] = 0.0 };
}
