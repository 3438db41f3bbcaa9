using Peft.Core.Modules;
using TorchSharp;

namespace Peft.Core.Tests.Modules;

public class Conv1DTests
{
    [Fact]
    public void ForwardIsXTimesWeightPlusBias()
    {
        using var scope = torch.NewDisposeScope();
        var layer = new Conv1D(outFeatures: 3, inFeatures: 2);
        Assert.Equal(new long[] { 2, 3 }, layer.weight.shape);
        var x = torch.randn(4, 5, 2);
        var expected = torch.matmul(x, layer.weight) + layer.bias;
        Assert.True(torch.allclose(expected, layer.forward(x), 1e-6, 1e-6));
    }

    [Fact]
    public void ParametersSurviveTheScopeTheLayerWasBuiltIn()
    {
        Conv1D layer;
        using (torch.NewDisposeScope())
        {
            layer = new Conv1D(3, 2);
        }
        // Would throw "Tensor invalid -- empty handle" if the scope had disposed the parameters.
        Assert.Equal(6, layer.weight.NumberOfElements);
        Assert.Equal(0f, layer.bias.sum().item<float>());
        Assert.Equal(new[] { "weight", "bias" }, layer.state_dict().Keys.ToArray());
        layer.Dispose();
    }
}
