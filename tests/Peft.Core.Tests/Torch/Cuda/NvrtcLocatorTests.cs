using Peft.Core.Torch.Cuda;
using Xunit;

namespace Peft.Core.Tests.Torch.Cuda;

/// <summary>
/// Where NVRTC is looked for, in order (<see cref="NvrtcLocator"/>), on a fake file system: the environment override,
/// the loaded libtorch_cuda.so's folder, the Python wheel layout beside it, LD_LIBRARY_PATH, then plain names; and
/// the real probe on this CUDA-less machine.
/// </summary>
public sealed class NvrtcLocatorTests
{
    private const string TorchLib = "/venv/lib/python3.12/site-packages/torch/lib";

    private static readonly Dictionary<string, string[]> Files = new()
    {
        [TorchLib] = ["libtorch_cuda.so", "libcaffe2_nvrtc.so"],
        ["/venv/lib/python3.12/site-packages/nvidia/cu13/lib"] = ["libnvrtc.so.13", "libnvrtc-builtins.so.13.0", "libnvrtc.alt.so.13"],
        ["/venv/lib/python3.12/site-packages/nvidia/cuda_nvrtc/lib"] = ["libnvrtc.so.12", "libnvrtc.so.12.8.93"],
        ["/opt/cuda/lib64"] = ["libnvrtc.so", "libnvrtc.so.11.2"],
    };

    private static IEnumerable<string> List(string dir) =>
        Files.TryGetValue(dir, out var names) ? names.Where(NvrtcLocator.IsNvrtc).Select(n => Path.Combine(dir, n)) : [];

    private static IEnumerable<string> Dirs(string dir) =>
        dir == "/venv/lib/python3.12/site-packages/nvidia"
            ? ["/venv/lib/python3.12/site-packages/nvidia/cuda_nvrtc", "/venv/lib/python3.12/site-packages/nvidia/cu13", "/venv/lib/python3.12/site-packages/nvidia/cudnn"]
            : [];

    [Fact]
    public void Probe_order_is_override_then_torch_folder_then_wheels_then_ld_path_then_names()
    {
        var c = NvrtcLocator.Candidates("/custom/libnvrtc.so.13", TorchLib + "/libtorch_cuda.so", "/opt/cuda/lib64::/missing", List, Dirs);
        Assert.Equal(
        [
            "/custom/libnvrtc.so.13",
            "/venv/lib/python3.12/site-packages/nvidia/cu13/lib/libnvrtc.so.13",          // wheel folders in name order
            "/venv/lib/python3.12/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12.8.93",  // newest version first
            "/venv/lib/python3.12/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12",
            "/opt/cuda/lib64/libnvrtc.so.11.2",
            "/opt/cuda/lib64/libnvrtc.so",
            .. NvrtcLocator.PlainNames,
        ], c);
    }

    [Fact]
    public void Nvrtc_next_to_libtorch_comes_before_the_wheels()
    {
        // libtorch's own copy under its hashed name (TorchSharp's libtorch-cuda packages), the builtins skipped
        Files["/libtorch/lib"] = ["libtorch_cuda.so", "libnvrtc-b51b459d.so.12", "libnvrtc-builtins-ab12cd34.so.12.8"];
        Assert.Equal(["/libtorch/lib/libnvrtc-b51b459d.so.12", .. NvrtcLocator.PlainNames],
            NvrtcLocator.Candidates(null, "/libtorch/lib/libtorch_cuda.so", null, List, Dirs));
        Assert.Equal(NvrtcLocator.PlainNames, NvrtcLocator.Candidates("  ", "/empty/lib/libtorch_cuda.so", "", List, Dirs));
    }

    [Fact]
    public void Without_libtorch_cuda_only_the_override_ld_path_and_names_remain_without_duplicates()
    {
        var c = NvrtcLocator.Candidates("libnvrtc.so.12", null, "/opt/cuda/lib64:/opt/cuda/lib64", List, Dirs);
        Assert.Equal(["libnvrtc.so.12", "/opt/cuda/lib64/libnvrtc.so.11.2", "/opt/cuda/lib64/libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.11.2", "libnvrtc.so"], c);
    }

    [Theory]
    [InlineData("libnvrtc.so", true)]
    [InlineData("libnvrtc.so.13", true)]
    [InlineData("libnvrtc.so.12.8.93", true)]
    [InlineData("libnvrtc-b51b459d.so.12", true)]
    [InlineData("libnvrtc-builtins.so.13.0", false)]
    [InlineData("libnvrtc-builtins-ab12cd34.so.12.8", false)]
    [InlineData("libnvrtc.alt.so.13", false)]
    [InlineData("libcaffe2_nvrtc.so", false)]
    public void Only_nvrtc_itself_is_a_candidate(string name, bool expected) => Assert.Equal(expected, NvrtcLocator.IsNvrtc(name));

    [Fact]
    public void The_environment_override_is_tried_first_in_this_process()
    {
        var old = Environment.GetEnvironmentVariable(NvrtcLocator.EnvVar);
        try
        {
            Environment.SetEnvironmentVariable(NvrtcLocator.EnvVar, "/nowhere/libnvrtc.so.99");
            Assert.Equal("/nowhere/libnvrtc.so.99", Nvrtc.Candidates()[0]);
        }
        finally
        {
            Environment.SetEnvironmentVariable(NvrtcLocator.EnvVar, old);
        }
    }

    [Fact]
    public void On_this_machine_the_probe_fails_cleanly_listing_what_it_tried()
    {
        var (compiler, error) = Nvrtc.Load();
        Assert.Null(compiler);
        Assert.StartsWith("unavailable: no NVRTC library could be loaded (set PEFT_NVRTC); tried ", error, StringComparison.Ordinal);
        foreach (var name in NvrtcLocator.PlainNames) Assert.Contains(name, error, StringComparison.Ordinal);
    }
}
