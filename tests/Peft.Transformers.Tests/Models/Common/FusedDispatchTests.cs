using Peft.Core.Torch.Cuda;
using Peft.Testing;
using Peft.Transformers.Models;
using Peft.Transformers.Models.Llama;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Models.Common;

/// <summary>
/// The fused-kernel dispatch of <see cref="RmsNorm"/> and <see cref="GatedMlp"/> on this CUDA-less machine: the eager
/// ops run, bit-identical to HF's chain written out here, with the switch on or off; the fused autograd nodes refuse
/// CPU tensors with a typed exception instead of reaching native code; no tensors leak through either module's new
/// code path. The fused kernels against the eager ops on CUDA: the benchmark case <c>fused_check</c>.
/// </summary>
[Collection(LeakTestCollection.Name)]
public sealed class FusedDispatchTests
{
    private const double Eps = 1e-6;

    // HF LlamaRMSNorm.forward written out: weight * (x.float() * rsqrt(x.float().pow(2).mean(-1) + eps)).to(dtype).
    private static Tensor HfRmsNorm(Tensor x, Tensor w)
    {
        var h = x.to_type(ScalarType.Float32);
        var r = rsqrt(h.pow(2).mean([-1], keepdim: true) + Eps);
        return w * (h * r).to_type(x.dtype);
    }

    // Same shape, dtype and values (no NaNs in these inputs, so value equality is bit equality up to the sign of zero).
    private static void SameBits(Tensor expected, Tensor actual, string what)
    {
        Assert.True(expected.shape.SequenceEqual(actual.shape) && expected.dtype == actual.dtype, $"{what}: shape or dtype differs");
        using var same = expected.eq(actual).all();
        Assert.True(same.item<bool>(), $"{what}: values differ");
    }

    [Theory]
    [InlineData(ScalarType.Float32, null)]
    [InlineData(ScalarType.Float32, "0")]
    [InlineData(ScalarType.BFloat16, null)]
    [InlineData(ScalarType.BFloat16, "0")]
    public void RmsNorm_on_cpu_runs_hf_eager_chain_with_the_switch_on_or_off(ScalarType dtype, string? fused)
    {
        var old = Environment.GetEnvironmentVariable(FusedKernels.EnvVar);
        Environment.SetEnvironmentVariable(FusedKernels.EnvVar, fused);
        try
        {
            using var scope = NewDisposeScope();
            manual_seed(11);
            using var norm = new RmsNorm(37, Eps);
            norm.to(dtype);
            using (no_grad()) norm.weight.copy_(1 + randn(37) * 0.1);
            var x = (randn(3, 5, 37) * 2).to_type(dtype).requires_grad_(true);
            var x2 = x.detach().clone().requires_grad_(true);
            var w2 = norm.weight.detach().clone().requires_grad_(true);
            var g = randn(3, 5, 37).to_type(dtype);
            var y = norm.forward(x);
            y.backward([g]);
            var expected = HfRmsNorm(x2, w2);
            expected.backward([g]);
            SameBits(expected, y, "RmsNorm output vs HF's eager chain");
            SameBits(x2.grad!, x.grad!, "RmsNorm grad x vs HF's eager chain");
            SameBits(w2.grad!, norm.weight.grad!, "RmsNorm grad w vs HF's eager chain");
        }
        finally
        {
            Environment.SetEnvironmentVariable(FusedKernels.EnvVar, old);
        }
    }

    [Fact]
    public void GatedMlp_on_cpu_runs_silu_times_up()
    {
        using var scope = NewDisposeScope();
        manual_seed(12);
        using var mlp = new GatedMlp(new LlamaConfig { HiddenSize = 6, IntermediateSize = 10 });
        var x = randn(2, 3, 6);
        var y = mlp.forward(x);
        var expected = mlp.down_proj.forward(nn.functional.silu(mlp.gate_proj.forward(x)) * mlp.up_proj.forward(x));
        SameBits(expected, y, "GatedMlp vs down(silu(gate(x)) * up(x))");
    }

    [Fact]
    public void Fused_nodes_refuse_cpu_tensors_with_a_typed_exception()
    {
        using var scope = NewDisposeScope();
        var x = randn(4, 8);
        var w = ones(8);
        var e = Assert.Throws<CudaDriverException>(() => RmsNormFunction.Apply(x, w, Eps));
        Assert.StartsWith("unavailable: ", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<CudaDriverException>(() => SwiGluFunction.Apply(x, x));
        Assert.StartsWith("unavailable: ", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => SwiGluFunction.Apply(x, randn(4, 9)));          // shapes checked before any kernel
        Assert.Throws<ArgumentException>(() => RmsNormFunction.Apply(x, ones(9), Eps));
    }

    [Fact]
    public void RmsNorm_and_GatedMlp_forward_backward_do_not_leak_tensors()
    {
        using var norm = new RmsNorm(16, Eps);
        using var mlp = new GatedMlp(new LlamaConfig { HiddenSize = 16, IntermediateSize = 24 });
        using var x = randn(2, 3, 16);
        var parameters = norm.parameters().Concat(mlp.parameters()).ToList();
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = NewDisposeScope();
            var leaf = x.detach().requires_grad_(true);
            mlp.forward(norm.forward(leaf)).sum().backward();
            Assert.NotNull(leaf.grad);
            foreach (var p in parameters) p.grad = null;
        }, 50, what: "RmsNorm + GatedMlp forward + backward in a scope");
    }
}
