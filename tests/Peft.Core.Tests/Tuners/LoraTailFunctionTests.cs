using Peft.Core.Torch.Cuda;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners;

/// <summary>
/// The fused float32 LoRA tail (<see cref="LoraTailFunction"/>, dispatched from plain LoRA's forward) on this
/// CUDA-less machine: the dispatch check refuses CPU tensors and non-float32 adapter outputs; the node refuses CPU
/// tensors with a typed exception and mismatched shapes with an <see cref="ArgumentException"/>; the sole-active-adapter
/// rule that guards the fused cast; a bf16 LoRA layer with float32 adapters keeps its eager forward with the switch on
/// or off, and its forward + backward does not leak. The kernel against PEFT's chain on CUDA: <c>fused_check</c>.
/// </summary>
[Collection(LeakTestCollection.Name)]
public sealed class LoraTailFunctionTests
{
    private static LoraLinear Bf16Layer(params string[] adapters)
    {
        var linear = nn.Linear(12, 9);
        linear.to(ScalarType.BFloat16);
        var config = new LoraConfig { R = 4, LoraAlpha = 8, InitLoraWeights = false };
        var layer = new LoraLinear(linear, adapters[0], 4, 8, config);
        foreach (var a in adapters.Skip(1)) layer.UpdateLayer(a, 4, 6, config);
        foreach (var a in adapters) layer.CastAdapterDtype(a);
        return layer;
    }

    [Fact]
    public void Dispatch_check_refuses_cpu_and_non_float32_adapter_outputs()
    {
        using var scope = NewDisposeScope();
        var result = randn(3, 5).to_type(ScalarType.BFloat16);
        Assert.False(FusedKernels.AppliesWithFloat32(result, randn(3, 5)));                                  // CPU
        Assert.False(FusedKernels.AppliesWithFloat32(result, randn(3, 5).to_type(ScalarType.BFloat16)));     // h not float32
    }

    [Fact]
    public void Fused_node_refuses_cpu_tensors_and_mismatched_shapes()
    {
        using var scope = NewDisposeScope();
        var result = randn(3, 5).to_type(ScalarType.BFloat16);
        var e = Assert.Throws<CudaDriverException>(() => LoraTailFunction.Apply(result, randn(3, 5), 2.0));
        Assert.StartsWith("unavailable: ", e.Message, StringComparison.Ordinal);
        var a = Assert.Throws<ArgumentException>(() => LoraTailFunction.Apply(result, randn(3, 6), 2.0));
        Assert.Contains("[3, 6]", a.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Sole_active_adapter_rule_follows_the_active_set()
    {
        using var layer = Bf16Layer("a", "b");
        layer.SetAdapter(["a"]);
        Assert.True(layer.IsSoleActiveAdapter("a"));
        Assert.False(layer.IsSoleActiveAdapter("b"));
        layer.SetAdapter(["a", "b"]);
        Assert.False(layer.IsSoleActiveAdapter("a"));
        layer.SetAdapter(["b", "missing"]);
        Assert.True(layer.IsSoleActiveAdapter("b"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("0")]
    public void Bf16_layer_with_float32_adapters_runs_the_eager_tail_on_cpu(string? fused)
    {
        var old = Environment.GetEnvironmentVariable(FusedKernels.EnvVar);
        Environment.SetEnvironmentVariable(FusedKernels.EnvVar, fused);
        try
        {
            using var scope = NewDisposeScope();
            using var layer = Bf16Layer("default");
            var x = randn([2, 3, 12], generator: new Generator(3)).to_type(ScalarType.BFloat16);
            var h = layer.LoraB("default").forward(layer.LoraA("default").forward(x.to_type(ScalarType.Float32)));
            var expected = layer.BaseLayer.forward(x).add(h, layer.Scaling["default"]).to_type(ScalarType.BFloat16);
            var actual = layer.forward(x);
            Assert.Equal(ScalarType.BFloat16, actual.dtype);
            Assert.True(expected.eq(actual).all().item<bool>(), "bf16 LoRA layer: eager tail differs");
        }
        finally
        {
            Environment.SetEnvironmentVariable(FusedKernels.EnvVar, old);
        }
    }

    [Fact]
    public void Bf16_layer_forward_backward_does_not_leak_tensors()
    {
        using var layer = Bf16Layer("default");
        using var x = randn(2, 3, 12).to_type(ScalarType.BFloat16);
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = NewDisposeScope();
            var leaf = x.detach().requires_grad_(true);
            layer.forward(leaf).to_type(ScalarType.Float32).sum().backward();
            Assert.NotNull(leaf.grad);
            foreach (var p in layer.parameters()) p.grad = null;
        }, 50, what: "bf16 LoRA layer forward + backward in a scope");
    }
}
