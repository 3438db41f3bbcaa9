using Peft.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Pipelines;

/// <summary>A model whose outputs are computed by a function of the input ids (for post-processing tests).</summary>
internal sealed class FixedLogitsModel(Func<long[], ModelOutput> f) : nn.Module<ModelInput, ModelOutput>("fixed")
{
    public long[]? LastIds { get; private set; }
    public Tensor? LastTypeIds { get; private set; }

    public override ModelOutput forward(ModelInput input)
    {
        LastIds = input.InputIds!.data<long>().ToArray();
        LastTypeIds = input.TokenTypeIds;
        return f(LastIds);
    }
}
