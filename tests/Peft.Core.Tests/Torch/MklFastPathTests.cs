using Peft.Core.Torch;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Torch;

public class MklFastPathTests
{
    [Fact]
    public void Describe_names_the_path_and_agrees_with_Active_and_the_environment()
    {
        string line = MklFastPath.Describe();
        Assert.StartsWith("mkl: ", line, StringComparison.Ordinal);
        Assert.Equal(MklFastPath.Active, line.StartsWith("mkl: vendor check overridden", StringComparison.Ordinal));
        if (Environment.GetEnvironmentVariable(MklFastPath.EnvVar) == "0") Assert.False(MklFastPath.Active);
    }

    [Theory]
    [InlineData(256, 768, 768)]   // q/k/v/o projection shape
    [InlineData(128, 768, 3072)]  // fc1
    [InlineData(64, 3072, 768)]   // fc2
    public void Fp32_gemm_on_the_path_in_use_equals_a_float64_reference_within_fp32_rounding(int m, int k, int n)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(1234);
        var a = randn([m, k], generator: g);
        var b = randn([k, n], generator: g);
        var got = matmul(a, b).to(ScalarType.Float64);
        var reference = matmul(a.to(ScalarType.Float64), b.to(ScalarType.Float64));
        // fp32 dot products of length k: error bound ~ k·eps·Σ|a||b|; use the per-entry Σ|a||b| as the scale.
        var scale = matmul(a.abs().to(ScalarType.Float64), b.abs().to(ScalarType.Float64));
        double worst = ((got - reference).abs() / scale).max().item<double>();
        Assert.True(worst < 2.0 * Math.Sqrt(k) * 1.2e-7, $"{MklFastPath.Describe()}: max relative error {worst:E3} for [{m}x{k}]·[{k}x{n}]");
    }
}
