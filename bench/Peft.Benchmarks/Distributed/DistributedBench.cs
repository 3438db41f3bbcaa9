using TorchSharp;
using System.Collections;
using Peft.Core.Distributed;
using Peft.Datasets;
using static TorchSharp.torch;

namespace Peft.Benchmarks.Distributed;

/// <summary>What the multi-GPU cases share: the rank's environment, its CUDA device, random token rows.</summary>
internal static class DistributedBench
{
    /// <summary>torchrun's variables (one process when unset).</summary>
    public static DistributedEnvironment Env => DistributedEnvironment.FromEnvironment();

    /// <summary>This rank's CUDA device (cuda:0 when peft-run bound one GPU per rank).</summary>
    public static Device CudaDevice(DistributedEnvironment env) => new(DeviceType.CUDA, ProcessGroup.CudaDeviceIndex(env));

    /// <summary>An integer knob from the environment.</summary>
    public static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : fallback;

    /// <summary><paramref name="rows"/> rows of <paramref name="seq"/> random ids in [3, vocab) with labels = ids and a full mask (seeded).</summary>
    public static Dataset RandomRows(int rows, int seq, int vocab, int seed)
    {
        var rng = new Random(seed);
        var ids = new List<long[]>(rows);
        var mask = new List<long[]>(rows);
        for (int r = 0; r < rows; r++)
        {
            ids.Add(Enumerable.Range(0, seq).Select(_ => (long)rng.Next(3, vocab)).ToArray());
            mask.Add(Enumerable.Repeat(1L, seq).ToArray());
        }
        return Dataset.FromDict(new Dictionary<string, IList>(StringComparer.Ordinal)
        {
            ["input_ids"] = ids, ["attention_mask"] = mask, ["labels"] = ids.Select(a => (long[])a.Clone()).ToList(),
        });
    }
}
