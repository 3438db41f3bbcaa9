using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Models;

/// <summary>
/// The random-number state a checkpointed layer ran with, so that its recomputation in backward draws the same
/// dropout masks (torch.utils.checkpoint <c>preserve_rng_state=True</c>).
/// </summary>
/// <remarks>
/// CPU: the default generator's state is saved before the first run and restored around the recomputation, after
/// which the current state is put back, so the global random stream is exactly the one of a run without
/// checkpointing (torch's <c>fork_rng</c>). CUDA: TorchSharp 0.107 exposes no CUDA generator state, so the layer runs
/// under a seed drawn from the CUDA generator itself and the recomputation re-seeds with it: the masks of the two
/// runs agree (gradients are exact), but the CUDA random stream differs from a run without checkpointing.
/// </remarks>
internal static class RngReplay
{
    /// <summary>
    /// Call right before the first run of the layer: returns the CPU generator state (a uint8 tensor in the current
    /// scope) and, on CUDA, the seed the layer now runs under.
    /// </summary>
    public static (Tensor CpuState, long? CudaSeed) Capture(Device device)
    {
        var state = get_rng_state();
        if (device.type != DeviceType.CUDA) return (state, null);
        long seed;
        using (var draw = randint(0, int.MaxValue, [1], dtype: ScalarType.Int64, device: device)) seed = draw.item<long>();
        cuda.manual_seed_all(seed);
        return (state, seed);
    }

    /// <summary>Sets the captured state for a recomputation; disposing restores the CPU state that was current.</summary>
    public static IDisposable Replay(Tensor cpuState, long? cudaSeed)
    {
        var current = get_rng_state();
        set_rng_state(cpuState);
        if (cudaSeed is { } s) cuda.manual_seed_all(s);
        return new Restore(current);
    }

    private sealed class Restore(Tensor state) : IDisposable
    {
        public void Dispose()
        {
            set_rng_state(state);
            state.Dispose();
        }
    }
}
