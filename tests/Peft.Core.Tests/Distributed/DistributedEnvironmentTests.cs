using Peft.Core.Distributed;

namespace Peft.Core.Tests.Distributed;

public class DistributedEnvironmentTests
{
    private static Func<string, string?> Env(params (string Key, string Value)[] vars) =>
        k => vars.FirstOrDefault(v => v.Key == k).Value;

    [Fact]
    public void ReadsTorchrunsVariables()
    {
        var e = DistributedEnvironment.FromEnvironment(Env(("WORLD_SIZE", "4"), ("RANK", "2"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "29501"), ("PEFT_DIST_TIMEOUT", "12.5")));
        Assert.Equal(new DistributedEnvironment(2, 4, 0, "10.0.0.1", 29501, TimeSpan.FromSeconds(12.5)), e);
        Assert.True(e.IsDistributed);
    }

    [Fact]
    public void WithoutWorldSizeItIsOneProcess() => Assert.Same(DistributedEnvironment.Single, DistributedEnvironment.FromEnvironment(Env()));

    [Theory]
    [InlineData("RANK", "4", "RANK = '4' is not an integer in [0, 3]")]
    [InlineData("RANK", "-1", "RANK = '-1'")]
    [InlineData("MASTER_PORT", "http", "MASTER_PORT = 'http'")]
    [InlineData("PEFT_DIST_TIMEOUT", "0", "PEFT_DIST_TIMEOUT = '0'")]
    [InlineData("MASTER_ADDR", "", "MASTER_ADDR is not set")]
    public void BadValuesAreNamed(string key, string value, string message)
    {
        var vars = new Dictionary<string, string> { ["WORLD_SIZE"] = "4", ["RANK"] = "1", ["MASTER_ADDR"] = "h", ["MASTER_PORT"] = "1234" };
        vars[key] = value;
        var e = Assert.Throws<ArgumentException>(() => DistributedEnvironment.FromEnvironment(k => vars.GetValueOrDefault(k)));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void CudaDeviceIsZeroWhenOneGpuIsBound()
    {
        var env = new DistributedEnvironment(1, 2, 1, "h", 1, TimeSpan.FromSeconds(1));
        Assert.Equal(0, ProcessGroup.CudaDeviceIndex(env, k => k == "CUDA_VISIBLE_DEVICES" ? "5" : null));
        Assert.Equal(1, ProcessGroup.CudaDeviceIndex(env, k => k == "CUDA_VISIBLE_DEVICES" ? "4,5" : null));
        Assert.Equal(1, ProcessGroup.CudaDeviceIndex(env, _ => null));
    }
}
