using Peft.Core.Distributed;

namespace Peft.Benchmarks.Distributed;

/// <summary>
/// Prints <see cref="DistributedSampler"/> orders (JSON lines) for a grid of lengths / world sizes / seeds / epochs /
/// drop_last / shuffle, for <c>bench/multi-gpu.sh</c> to compare with <c>torch.utils.data.DistributedSampler</c> on a
/// machine with PyTorch (needs no GPU).
/// </summary>
public sealed class SamplerOrderBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "sampler_orders";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        foreach (int n in new[] { 1, 7, 10, 64, 1000 })
        foreach (int w in new[] { 1, 2, 3, 8 })
        foreach (long seed in new[] { 0L, 42L })
        foreach (int epoch in new[] { 0, 3 })
        foreach (bool dropLast in new[] { false, true })
        foreach (bool shuffle in new[] { true, false })
        for (int r = 0; r < w; r++)
        {
            if (dropLast && n < w) continue;
            var s = new DistributedSampler(n, w, r, shuffle, seed, dropLast);
            s.SetEpoch(epoch);
            report(new Dictionary<string, object?>
            {
                ["case"] = "sampler_order", ["n"] = n, ["world"] = w, ["rank"] = r, ["seed"] = seed, ["epoch"] = epoch,
                ["drop_last"] = dropLast, ["shuffle"] = shuffle, ["indices"] = s.Indices(),
            });
        }
    }
}
