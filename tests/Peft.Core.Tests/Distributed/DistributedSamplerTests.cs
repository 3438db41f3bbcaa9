using Peft.Core.Distributed;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Distributed;

// The expected values follow torch/utils/data/distributed.py (torch 2.11) step by step: num_samples, padding with the
// head of the order, cutting with drop_last, stride-world-size subsampling. That the shuffled base order equals
// torch.randperm with a seeded Generator is checked against Python torch by bench/multi-gpu.sh step (0).
public class DistributedSamplerTests
{
    [Fact]
    public void PaddingRepeatsTheHeadAndRanksTakeEveryWorldSizeTh()
    {
        var s = Enumerable.Range(0, 3).Select(r => new DistributedSampler(10, 3, r, shuffle: false)).ToArray();
        Assert.Equal((4, 12), (s[0].NumSamples, s[0].TotalSize));
        Assert.Equal([0, 3, 6, 9], s[0].Indices());
        Assert.Equal([1, 4, 7, 0], s[1].Indices());
        Assert.Equal([2, 5, 8, 1], s[2].Indices());
    }

    [Fact]
    public void PaddingLongerThanTheDatasetRepeatsItWhole()
    {
        var s = new DistributedSampler(2, 5, 4, shuffle: false);   // total 5: [0, 1, 0, 1, 0]
        Assert.Equal([0], s.Indices());
        Assert.Equal([0, 1, 0, 1, 0], s.GlobalOrder(0));
    }

    [Fact]
    public void DropLastCutsTheTail()
    {
        var s = Enumerable.Range(0, 3).Select(r => new DistributedSampler(10, 3, r, shuffle: false, dropLast: true)).ToArray();
        Assert.Equal((3, 9), (s[0].NumSamples, s[0].TotalSize));   // ceil((10 - 3) / 3)
        Assert.Equal([0, 3, 6], s[0].Indices());
        Assert.Equal([2, 5, 8], s[2].Indices());
        Assert.Equal(4, new DistributedSampler(12, 3, 0, dropLast: true).NumSamples);   // divisible: no cut
    }

    [Fact]
    public void ShuffledOrderIsRandpermOfSeedPlusEpochSplitOverRanks()
    {
        int n = 23, w = 4;
        var ranks = Enumerable.Range(0, w).Select(r => new DistributedSampler(n, w, r, seed: 5)).ToArray();
        foreach (var s in ranks) s.SetEpoch(2);
        using var g = new Generator(7);
        using var perm = randperm(n, generator: g);
        var expected = perm.data<long>().Select(x => (int)x).ToArray();
        var global = ranks[0].GlobalOrder(2);
        Assert.Equal(expected, global[..n]);
        Assert.Equal(expected[..(ranks[0].TotalSize - n)], global[n..]);
        for (int r = 0; r < w; r++)
            Assert.Equal(Enumerable.Range(0, ranks[r].NumSamples).Select(i => global[r + i * w]), ranks[r].Indices());
        Assert.NotEqual(ranks[0].Indices(0), ranks[0].Indices(1));
        Assert.Equal(ranks[0].Indices(), ranks[0].Indices(2));
    }

    [Fact]
    public void OneRankReadsThePlainPermutation()
    {
        var s = new DistributedSampler(9, 1, 0, seed: 3);
        Assert.Equal(DistributedSampler.BaseOrder(9, true, 3), s.Indices());
    }

    [Fact]
    public void BadArgumentsFailNamingThem()
    {
        Assert.Contains("Invalid rank 3", Assert.Throws<ArgumentOutOfRangeException>(() => new DistributedSampler(10, 3, 3)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new DistributedSampler(10, 0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DistributedSampler(-1, 1, 0));
    }
}
