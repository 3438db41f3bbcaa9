using Peft.Datasets.Random;

namespace Peft.Datasets;

/// <summary>HF's stratified split (<c>datasets.utils.stratify</c>, after scikit-learn's StratifiedShuffleSplit), first split only.</summary>
internal static class Stratify
{
    private static long[] ApproximateMode(long[] classCounts, int nDraws, NumpyGenerator rng)
    {
        long total = classCounts.Sum();
        var continuous = classCounts.Select(c => (double)(nDraws * c) / total).ToArray();
        var floored = continuous.Select(Math.Floor).ToArray();
        int needToAdd = (int)(nDraws - floored.Sum());
        if (needToAdd > 0)
        {
            var remainder = continuous.Select((c, i) => c - floored[i]).ToArray();
            foreach (var value in remainder.Distinct().OrderByDescending(v => v))
            {
                var inds = Enumerable.Range(0, remainder.Length).Where(i => remainder[i] == value).ToArray();
                int addNow = Math.Min(inds.Length, needToAdd);
                var chosen = rng.ChoiceWithoutReplacement(inds.Length, addNow);
                foreach (var c in chosen) floored[inds[c]] += 1;
                needToAdd -= addNow;
                if (needToAdd == 0) break;
            }
        }
        return floored.Select(f => (long)f).ToArray();
    }

    public static (int[] Train, int[] Test) Split(long[] y, int nTrain, int nTest, NumpyGenerator rng, string column)
    {
        var classes = y.Distinct().Order().ToArray();
        var classIndex = classes.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i);
        var yIdx = y.Select(v => classIndex[v]).ToArray();
        var counts = new long[classes.Length];
        foreach (var k in yIdx) counts[k]++;
        if (counts.Min() < 2)
            throw new ArgumentException($"The least populated class in {column} column has only 1 member, which is too few. The minimum number of groups for any class cannot be less than 2.");
        if (nTrain < classes.Length) throw new ArgumentException($"The train_size = {nTrain} should be greater or equal to the number of classes = {classes.Length}");
        if (nTest < classes.Length) throw new ArgumentException($"The test_size = {nTest} should be greater or equal to the number of classes = {classes.Length}");
        // np.split(np.argsort(y_indices, kind="mergesort"), cumsum(counts)[:-1]): row ids per class in ascending order.
        var classRows = new List<int>[classes.Length];
        for (int k = 0; k < classes.Length; k++) classRows[k] = new List<int>((int)counts[k]);
        for (int r = 0; r < yIdx.Length; r++) classRows[yIdx[r]].Add(r);

        var nI = ApproximateMode(counts, nTrain, rng);
        var remaining = counts.Select((c, i) => c - nI[i]).ToArray();
        var tI = ApproximateMode(remaining, nTest, rng);
        var train = new List<int>();
        var test = new List<int>();
        for (int k = 0; k < classes.Length; k++)
        {
            var perm = rng.Permutation((int)counts[k]);
            var permRows = perm.Select(p => classRows[k][p]).ToArray();
            train.AddRange(permRows.Take((int)nI[k]));
            test.AddRange(permRows.Skip((int)nI[k]).Take((int)tI[k]));
        }
        return (rng.Permutation(train), rng.Permutation(test));
    }
}
