using Peft.Core.Distributed;
using Peft.Core.Distributed.Nccl;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Distributed;

public class NcclCollectivesTests
{
    /// <summary>An NCCL stand-in: records calls, returns a chosen result code, works on host memory.</summary>
    private sealed class FakeNccl(int failWith = 0) : INcclApi
    {
        public List<(string Call, ulong Count, NcclDataType Type, IntPtr Send, IntPtr Recv)> Calls { get; } = [];

        public bool AcceptsHostBuffers => true;

        public int GetVersion(out int version) { version = 22800; return 0; }

        public int GetUniqueId(out NcclUniqueId id) { id = NcclUniqueId.FromArray(Enumerable.Range(0, 128).Select(i => (byte)i).ToArray()); return failWith; }

        public int CommInitRank(out IntPtr comm, int nranks, NcclUniqueId id, int rank) { comm = new IntPtr(42); return 0; }

        public int CommDestroy(IntPtr comm) => 0;

        public int CommAbort(IntPtr comm) => 0;

        public string GetErrorString(int result) => $"fake text for {result}";

        public string GetLastError(IntPtr comm) => "peer 1 went away";

        public int AllReduce(IntPtr send, IntPtr recv, ulong count, NcclDataType type, ReduceOp op, IntPtr comm, IntPtr stream) => Record("AllReduce", count, type, send, recv);

        public int Broadcast(IntPtr send, IntPtr recv, ulong count, NcclDataType type, int root, IntPtr comm, IntPtr stream) => Record("Broadcast", count, type, send, recv);

        public int AllGather(IntPtr send, IntPtr recv, ulong sendCount, NcclDataType type, IntPtr comm, IntPtr stream) => Record("AllGather", sendCount, type, send, recv);

        public int ReduceScatter(IntPtr send, IntPtr recv, ulong recvCount, NcclDataType type, ReduceOp op, IntPtr comm, IntPtr stream) => Record("ReduceScatter", recvCount, type, send, recv);

        private int Record(string call, ulong count, NcclDataType type, IntPtr send, IntPtr recv)
        {
            Calls.Add((call, count, type, send, recv));
            return failWith;
        }
    }

    /// <summary>The real binding's checks, with a fake that insists on device memory.</summary>
    private sealed class DeviceOnlyNccl : INcclApi
    {
        public int GetVersion(out int version) { version = 0; return 0; }
        public int GetUniqueId(out NcclUniqueId id) { id = default; return 0; }
        public int CommInitRank(out IntPtr comm, int nranks, NcclUniqueId id, int rank) { comm = new IntPtr(1); return 0; }
        public int CommDestroy(IntPtr comm) => 0;
        public int CommAbort(IntPtr comm) => 0;
        public string GetErrorString(int result) => "";
        public string GetLastError(IntPtr comm) => "";
        public int AllReduce(IntPtr send, IntPtr recv, ulong count, NcclDataType type, ReduceOp op, IntPtr comm, IntPtr stream) => throw new InvalidOperationException("must not be reached");
        public int Broadcast(IntPtr send, IntPtr recv, ulong count, NcclDataType type, int root, IntPtr comm, IntPtr stream) => throw new InvalidOperationException("must not be reached");
        public int AllGather(IntPtr send, IntPtr recv, ulong sendCount, NcclDataType type, IntPtr comm, IntPtr stream) => throw new InvalidOperationException("must not be reached");
        public int ReduceScatter(IntPtr send, IntPtr recv, ulong recvCount, NcclDataType type, ReduceOp op, IntPtr comm, IntPtr stream) => throw new InvalidOperationException("must not be reached");
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, NcclDataType.BFloat16)]
    [InlineData(ScalarType.Float16, NcclDataType.Float16)]
    [InlineData(ScalarType.Float32, NcclDataType.Float32)]
    [InlineData(ScalarType.Int64, NcclDataType.Int64)]
    public void CallsPassTheTensorsPointerCountAndType(ScalarType dtype, NcclDataType expected)
    {
        var api = new FakeNccl();
        using var comm = NcclCollectives.Create(api, NcclCollectives.NewUniqueId(api), rank: 1, worldSize: 2);
        using var t = zeros([3, 5], dtype: dtype);
        comm.AllReduce(t);
        var call = Assert.Single(api.Calls);
        Assert.Equal(("AllReduce", 15UL, expected), (call.Call, call.Count, call.Type));
        Assert.Equal(call.Send, call.Recv);                                   // in place
        Assert.Equal(TensorMemory.DataPointer(t), call.Send);
        using var view = t[1];                                                // a row: the pointer includes the storage offset
        Assert.Equal(TensorMemory.DataPointer(t) + 5 * (int)t.ElementSize, TensorMemory.DataPointer(view));
    }

    [Fact]
    public void AllGatherAndReduceScatterUsePerRankCounts()
    {
        var api = new FakeNccl();
        using var comm = NcclCollectives.Create(api, default, rank: 0, worldSize: 4);
        using var small = zeros(3);
        using var big = zeros(12);
        comm.AllGather(small, big);
        comm.ReduceScatter(big, small);
        Assert.Equal(new[] { ("AllGather", 3UL), ("ReduceScatter", 3UL) }, api.Calls.Select(c => (c.Call, c.Count)));
        var e = Assert.Throws<ArgumentException>(() => comm.AllGather(small, small));
        Assert.Contains("expected 12 elements, got 3", e.Message);
    }

    [Fact]
    public void AnErrorCodeBecomesAnExceptionNamingRankCallAndReason()
    {
        var api = new FakeNccl(failWith: 6);
        using var comm = NcclCollectives.Create(api, default, rank: 1, worldSize: 2);
        using var t = zeros(4);
        var e = Assert.Throws<NcclException>(() => comm.AllReduce(t));
        Assert.Equal(6, e.Result);
        Assert.Equal((1, 2, "ncclAllReduce"), (e.Rank, e.WorldSize, e.Call));
        Assert.Contains("rank 1/2: ncclAllReduce failed: ncclRemoteError (6): fake text for 6; last error: peer 1 went away", e.Message);
        var id = Assert.Throws<NcclException>(() => NcclCollectives.NewUniqueId(api, 0, 2));
        Assert.Contains("ncclGetUniqueId", id.Message);
    }

    [Fact]
    public void HostTensorsUnsupportedTypesAndViewsAreRefusedBeforeTheNativeCall()
    {
        using var comm = NcclCollectives.Create(new DeviceOnlyNccl(), default, rank: 0, worldSize: 2);
        using var cpu = zeros(4);
        Assert.Contains("needs a CUDA tensor, got one on cpu", Assert.Throws<ArgumentException>(() => comm.AllReduce(cpu)).Message);
        var api = new FakeNccl();
        using var host = NcclCollectives.Create(api, default, rank: 0, worldSize: 2);
        using var flags = zeros(4, dtype: ScalarType.Bool);
        Assert.Contains("NCCL has no element type for Bool", Assert.Throws<ArgumentException>(() => host.AllReduce(flags)).Message);
        using var m = zeros(4, 4);
        using var transposed = m.t();
        Assert.Contains("contiguous", Assert.Throws<ArgumentException>(() => host.Broadcast(transposed)).Message);
        Assert.Empty(api.Calls);
    }

    [Fact]
    public void ADisposedCommunicatorRefusesCalls()
    {
        var api = new FakeNccl();
        var comm = NcclCollectives.Create(api, default, rank: 0, worldSize: 2);
        comm.Dispose();
        using var t = zeros(2);
        Assert.Contains("destroyed or aborted", Assert.Throws<CollectiveException>(() => comm.AllReduce(t)).Message);
    }

    [Fact]
    public void ErrorNamesFollowNcclH()
    {
        Assert.Equal("ncclUnhandledCudaError", NcclErrors.Name(1));
        Assert.Equal("ncclInvalidUsage", NcclErrors.Name(5));
        Assert.Equal("ncclInProgress", NcclErrors.Name(7));
        Assert.Equal("ncclResult 99", NcclErrors.Name(99));
    }

    [Fact]
    public void UniqueIdRoundTripsThroughBytes()
    {
        var bytes = Enumerable.Range(0, 128).Select(i => (byte)(255 - i)).ToArray();
        Assert.Equal(bytes, NcclUniqueId.FromArray(bytes).ToArray());
        Assert.Throws<ArgumentException>(() => NcclUniqueId.FromArray(new byte[12]));
    }

    [Fact]
    public void LibraryIsFoundFromTheEnvVarOrNextToTorch()
    {
        string root = Path.Combine(Path.GetTempPath(), "peft-nccl-" + Guid.NewGuid().ToString("N"));
        try
        {
            var torchLib = Directory.CreateDirectory(Path.Combine(root, "site-packages", "torch", "lib")).FullName;
            var ncclDir = Directory.CreateDirectory(Path.Combine(root, "site-packages", "nvidia", "nccl", "lib")).FullName;
            File.WriteAllText(Path.Combine(ncclDir, "libnccl.so.2"), "");
            var found = NcclLibrary.Candidates(n => n == "LD_LIBRARY_PATH" ? "/nonexistent:" + torchLib : null);
            Assert.Equal([Path.Combine(ncclDir, "libnccl.so.2"), "libnccl.so.2"], found);
            var e = Assert.Throws<FileNotFoundException>(() => NcclLibrary.Candidates(n => n == NcclLibrary.EnvVar ? "/no/such/libnccl.so.2" : null));
            Assert.Contains("PEFT_NCCL_LIB = '/no/such/libnccl.so.2'", e.Message);
            Assert.Equal(["libnccl.so.2"], NcclLibrary.Candidates(_ => null));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
