using Peft.Core.Distributed;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Distributed;

public class InProcessGroupTests
{
    // Runs body(rank, collectives) on one thread per rank and returns each rank's result.
    internal static T[] OnRanks<T>(InProcessGroup group, Func<int, ICollectives, T> body)
    {
        var results = new T[group.WorldSize];
        var errors = new Exception?[group.WorldSize];
        var threads = Enumerable.Range(0, group.WorldSize).Select(r => new Thread(() =>
        {
            try { results[r] = body(r, group.Rank(r)); }
            catch (Exception e) { errors[r] = e; }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        if (errors.FirstOrDefault(e => e is not null) is { } first) throw new AggregateException(errors.Where(e => e is not null)!);
        return results;
    }

    [Fact]
    public void AllReduceSumAvgMaxGiveEveryRankTheSameResult()
    {
        using var group = new InProcessGroup(3);
        var results = OnRanks(group, (r, c) =>
        {
            using var s = tensor(new float[] { r, 10 * r + 1 });
            c.AllReduce(s);
            using var a = tensor(new float[] { r, 2 });
            c.AllReduce(a, ReduceOp.Avg);
            using var m = tensor(new float[] { -r, r });
            c.AllReduce(m, ReduceOp.Max);
            return s.data<float>().Concat(a.data<float>()).Concat(m.data<float>()).ToArray();
        });
        foreach (var r in results) Assert.Equal(new float[] { 3, 33, 1, 2, 0, 2 }, r);
    }

    [Fact]
    public void BroadcastAllGatherReduceScatter()
    {
        using var group = new InProcessGroup(2);
        var results = OnRanks(group, (r, c) =>
        {
            using var b = full(3, 5 + r, dtype: ScalarType.Float32);
            c.Broadcast(b, root: 1);
            using var gathered = empty(4);
            using var mine = tensor(new float[] { r, r + 0.5f });
            c.AllGather(mine, gathered);
            using var input = arange(4, dtype: ScalarType.Float32) * (r + 1);
            using var part = empty(2);
            c.ReduceScatter(input, part);
            return (b.data<float>().ToArray(), gathered.data<float>().ToArray(), part.data<float>().ToArray());
        });
        Assert.All(results, x => Assert.Equal(new float[] { 6, 6, 6 }, x.Item1));
        Assert.All(results, x => Assert.Equal(new float[] { 0, 0.5f, 1, 1.5f }, x.Item2));
        Assert.Equal(new float[] { 0, 3 }, results[0].Item3);   // (0,1,2,3)·1 + (0,1,2,3)·2, part 0
        Assert.Equal(new float[] { 6, 9 }, results[1].Item3);
    }

    [Fact]
    public void AMissingRankTimesOutNamingTheCall()
    {
        using var group = new InProcessGroup(2, TimeSpan.FromMilliseconds(300));
        var c = group.Rank(0);
        using var t = ones(2);
        var e = Assert.Throws<CollectiveException>(() => c.AllReduce(t));
        Assert.Contains("rank 0/2", e.Message);
        Assert.Contains("AllReduce(Sum)", e.Message);
        Assert.Contains("did not arrive", e.Message);
    }

    [Fact]
    public void MismatchedShapesAreReportedWithBothShapes()
    {
        using var group = new InProcessGroup(2, TimeSpan.FromSeconds(2));
        var e = Assert.Throws<AggregateException>(() => OnRanks(group, (r, c) =>
        {
            using var t = ones(r + 1);
            c.AllReduce(t);
            return 0;
        }));
        Assert.Contains(e.InnerExceptions, x => x is CollectiveException && x.Message.Contains("rank 1 passed [2]"));
    }
}
