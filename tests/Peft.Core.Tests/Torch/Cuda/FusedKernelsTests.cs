using Peft.Core.Torch;
using Peft.Core.Torch.Cuda;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Torch.Cuda;

/// <summary>
/// The fused CUDA kernels on this CUDA-less machine: availability is a clean "unavailable: ..." reason (no exception,
/// no crash), the dispatch refuses CPU tensors, other dtypes and the off switch, and the kernel source is embedded.
/// The kernels themselves are checked against the eager ops on the GPU by the benchmark case <c>fused_check</c>
/// (bench/README.md).
/// </summary>
public sealed class FusedKernelsTests
{
    [Fact]
    public void Without_a_driver_availability_is_a_clean_reason()
    {
        Assert.False(cuda.is_available());
        string? why = FusedKernels.Unavailable(0);
        Assert.NotNull(why);
        Assert.StartsWith("unavailable: ", why, StringComparison.Ordinal);
        Assert.Contains("libcuda.so.1", why, StringComparison.Ordinal);         // the first missing piece, named
        Assert.Equal(why, FusedKernels.Unavailable(0));                          // cached, stable
        Assert.Equal(why, FusedKernels.Unavailable(-1));                         // "cuda" without an index is cuda:0
    }

    [Fact]
    public void The_driver_binding_reports_the_missing_library()
    {
        var (driver, error) = CudaDriver.Load();
        Assert.Null(driver);
        Assert.Equal("unavailable: libcuda.so.1 could not be loaded (no NVIDIA driver)", error);
    }

    [Fact]
    public void Dispatch_refuses_cpu_tensors_other_dtypes_and_empty_input()
    {
        using var scope = NewDisposeScope();
        var x = randn(4, 8);
        var w = ones(8);
        Assert.False(FusedKernels.Applies(x, w));                                // CPU: never touches CUDA
        Assert.False(FusedKernels.Applies(x.to_type(ScalarType.BFloat16), w.to_type(ScalarType.BFloat16)));
        Assert.False(FusedKernels.Applies(x.to_type(ScalarType.Float64), w.to_type(ScalarType.Float64)));
        Assert.False(FusedKernels.Applies(empty(0, 8), w));
        Assert.False(FusedKernels.Applies());
    }

    [Fact]
    public void The_off_switch_is_read_on_every_dispatch()
    {
        var old = Environment.GetEnvironmentVariable(FusedKernels.EnvVar);
        try
        {
            Environment.SetEnvironmentVariable(FusedKernels.EnvVar, "0");
            Assert.False(FusedKernels.Enabled);
            Environment.SetEnvironmentVariable(FusedKernels.EnvVar, "1");
            Assert.True(FusedKernels.Enabled);
            Environment.SetEnvironmentVariable(FusedKernels.EnvVar, null);
            Assert.True(FusedKernels.Enabled);                                   // on by default
        }
        finally
        {
            Environment.SetEnvironmentVariable(FusedKernels.EnvVar, old);
        }
    }

    [Fact]
    public void Family_switch_turns_single_kernel_families_off()
    {
        var old = Environment.GetEnvironmentVariable(FusedKernels.EnvVar);
        try
        {
            Environment.SetEnvironmentVariable(FusedKernels.EnvVar, null);
            Assert.True(FusedKernels.EnabledFor("rotary"));
            Environment.SetEnvironmentVariable(FusedKernels.EnvVar, "0");
            Assert.False(FusedKernels.EnabledFor("rmsnorm"));
            Environment.SetEnvironmentVariable(FusedKernels.EnvVar, " -rotary , -lora_tail");
            Assert.False(FusedKernels.EnabledFor("rotary"));
            Assert.False(FusedKernels.EnabledFor("lora_tail"));
            Assert.True(FusedKernels.EnabledFor("rmsnorm"));
            Assert.True(FusedKernels.EnabledFor("rot"));                       // whole names only
            Assert.True(FusedKernels.Enabled);                                   // the global switch stays on
        }
        finally
        {
            Environment.SetEnvironmentVariable(FusedKernels.EnvVar, old);
        }
    }

    [Fact]
    public void Kernel_source_is_embedded_with_every_kernel_for_every_dtype()
    {
        Assert.Contains(FusedKernels.SourceResource, typeof(FusedKernels).Assembly.GetManifestResourceNames());
        string src = FusedKernels.KernelSource();
        foreach (var kernel in new[] { "rms_fwd", "rms_bwd_x", "rms_bwd_w", "swiglu_fwd", "swiglu_bwd", "rope", "lora_tail_fwd", "lora_tail_bwd" })
            Assert.Contains($"extern \"C\" __global__ void {kernel}_##SUFFIX(", src, StringComparison.Ordinal);
        foreach (var instance in new[] { "PEFT_INSTANTIATE(bf16, Bf16)", "PEFT_INSTANTIATE(f16, F16)", "PEFT_INSTANTIATE(f32, F32)" })
            Assert.Contains(instance, src, StringComparison.Ordinal);
        Assert.DoesNotContain("#include", src, StringComparison.Ordinal);       // NVRTC compiles it with no headers
    }

    [Fact]
    public void The_stream_export_is_built_and_needs_the_cuda_libtorch()
    {
        using var warm = ones(1);
        if (CudaGraph.FindShim() is null)
        {
            // a build without g++ ships no shim: the reason names it
            Assert.Contains(CudaGraph.ShimFile + " not found", TorchStream.Unavailable, StringComparison.Ordinal);
            return;
        }
        Assert.Null(TorchStream.Unavailable);                                    // the export is there
        var e = Assert.Throws<CudaDriverException>(() => TorchStream.Current(0));
        Assert.StartsWith("unavailable: libc10_cuda.so is not loaded", e.Message, StringComparison.Ordinal);
    }
}
