using Peft.Core.Torch;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Torch;

/// <summary>
/// The CUDA graph shim on a machine without CUDA: it must load (it is built with the project), report a clean
/// "unavailable: ..." reason instead of crashing, and refuse to capture. Capture and replay themselves are checked
/// on the GPU by the benchmark case <c>generate_graph_check</c> (bench/README.md).
/// </summary>
public sealed class CudaGraphTests
{
    [Fact]
    public void Without_cuda_the_shim_reports_a_clean_reason()
    {
        Assert.False(cuda.is_available());                     // the test suite runs on the CPU build of libtorch
        using var warm = ones(2);                              // libtorch is loaded, its CUDA library is not
        string? why = CudaGraph.Unavailable;
        Assert.NotNull(why);
        Assert.StartsWith("unavailable: ", why, StringComparison.Ordinal);
        // With the shim built (g++ present at build time, as on CI), it was found and looked for the CUDA library; a
        // build without g++ ships no shim and says so by name (the build printed why).
        bool built = File.Exists(Path.Combine(AppContext.BaseDirectory, CudaGraph.ShimFile));
        Assert.Contains(built ? "libtorch_cuda.so" : CudaGraph.ShimFile + " not found", why, StringComparison.Ordinal);
        Assert.Equal(why, CudaGraph.Unavailable);              // stable across calls
    }

    [Fact]
    public void Capture_refuses_a_cpu_device_without_running_the_action()
    {
        var ran = 0;
        var e = Assert.Throws<ArgumentException>(() => CudaGraph.Capture(CPU, () => ran++));
        Assert.Contains("CUDA device", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, ran);
    }
}
