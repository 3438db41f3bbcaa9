using Peft.Datasets;
using Peft.Datasets.Random;

namespace Peft.Datasets.Tests.Random;

public class NumpyGeneratorTests
{
    // numpy reference outputs published with numpy (Generator(PCG64) seeded through SeedSequence):
    //   np.random.default_rng(42).random(9) = [0.77395605 0.43887844 0.85859792 0.69736803 0.09417735
    //                                          0.97562235 0.7611397  0.78606431 0.12811363]
    //   np.random.default_rng(42).permutation(10) = [5 6 0 7 3 2 4 9 1 8]
    //   np.random.default_rng(0).permutation(10)  = [4 6 2 7 3 5 9 0 8 1]
    //   np.random.default_rng(1).permutation(10)  = [8 4 7 0 1 2 5 9 6 3]
    //   np.random.default_rng(3).permutation(5)   = [4 2 1 3 0]
    [Fact]
    public void RandomMatchesNumpyDefaultRng42()
    {
        var g = new NumpyGenerator(42);
        double[] expected = [0.77395605, 0.43887844, 0.85859792, 0.69736803, 0.09417735, 0.97562235, 0.7611397, 0.78606431, 0.12811363];
        foreach (var e in expected) Assert.True(Math.Abs(e - g.NextDouble()) <= 5.1e-9, $"expected {e}");
    }

    [Theory]
    [InlineData(42, 10, new[] { 5, 6, 0, 7, 3, 2, 4, 9, 1, 8 })]
    [InlineData(0, 10, new[] { 4, 6, 2, 7, 3, 5, 9, 0, 8, 1 })]
    [InlineData(1, 10, new[] { 8, 4, 7, 0, 1, 2, 5, 9, 6, 3 })]
    [InlineData(3, 5, new[] { 4, 2, 1, 3, 0 })]
    public void PermutationMatchesNumpy(int seed, int n, int[] expected)
    {
        Assert.Equal(expected, new NumpyGenerator((ulong)seed).Permutation(n));
    }

    [Fact]
    public void DatasetShuffleUsesNumpyPermutation()
    {
        var ds = Dataset.FromDict(new Dictionary<string, System.Collections.IList> { ["x"] = Enumerable.Range(0, 10).ToList() });
        var shuffled = ds.Shuffle(seed: 42);
        Assert.Equal([5, 6, 0, 7, 3, 2, 4, 9, 1, 8], shuffled.Column<int>("x").ToArray());
        Assert.True(shuffled.HasIndices);
    }

    [Fact]
    public void ChoiceWithoutReplacementIsADistinctSample()
    {
        var g = new NumpyGenerator(7);
        var c = g.ChoiceWithoutReplacement(20, 8);
        Assert.Equal(8, c.Distinct().Count());
        Assert.All(c, v => Assert.InRange(v, 0, 19));
        Assert.Equal(c, new NumpyGenerator(7).ChoiceWithoutReplacement(20, 8));
    }
}
