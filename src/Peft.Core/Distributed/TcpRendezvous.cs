using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Peft.Core.Distributed;

/// <summary>
/// Rendezvous and liveness watch over TCP (the role of torchrun's TCPStore for NCCL): rank 0 listens on
/// <c>MASTER_ADDR:MASTER_PORT</c>, every other rank connects (retrying until the timeout), rank 0 sends each one the
/// payload (the NCCL unique id). The connections then stay open as a watchdog: every rank sends a heartbeat each
/// second; a closed connection (a killed process: the kernel closes its sockets) or a peer silent for
/// <see cref="DistributedEnvironment.Timeout"/> is reported once through the <c>onPeerLost</c> callback, and rank 0
/// relays the message to the other ranks, so every rank learns of any rank's death.
/// </summary>
/// <remarks>Frames: one type byte (J join, P payload, H heartbeat, A abort, Q quit) + int32 length + bytes.</remarks>
public sealed class TcpRendezvous : IDisposable
{
    private const byte Join = (byte)'J', PayloadFrame = (byte)'P', Heartbeat = (byte)'H', Abort = (byte)'A', Quit = (byte)'Q';
    private readonly DistributedEnvironment _env;
    private readonly Action<string> _onPeerLost;
    private readonly Dictionary<int, Socket> _peers = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Thread> _watchers = [];
    private int _failed;
    private volatile bool _closing;

    private TcpRendezvous(DistributedEnvironment env, Action<string> onPeerLost) => (_env, _onPeerLost) = (env, onPeerLost);

    /// <summary>The bytes rank 0 sent (rank 0: what it produced).</summary>
    public byte[] Payload { get; private set; } = [];

    /// <summary>The first failure reported, or null.</summary>
    public string? Failure { get; private set; }

    /// <summary>
    /// Joins the group described by <paramref name="env"/>; rank 0 calls <paramref name="makePayload"/> once every
    /// rank has connected. Blocks until the payload is known on this rank.
    /// </summary>
    /// <param name="env">Rank, world size, address, port, timeout.</param>
    /// <param name="makePayload">Rank 0's payload (ignored on the other ranks).</param>
    /// <param name="onPeerLost">Called once (on a watchdog thread) with a message naming the lost rank.</param>
    /// <exception cref="CollectiveException">The rendezvous did not complete within the timeout (the message says which ranks are missing).</exception>
    public static TcpRendezvous Start(DistributedEnvironment env, Func<byte[]> makePayload, Action<string> onPeerLost)
    {
        ArgumentNullException.ThrowIfNull(env);
        var r = new TcpRendezvous(env, onPeerLost);
        try
        {
            if (env.Rank == 0) r.Serve(makePayload);
            else r.Connect();
            r.StartWatch();
            return r;
        }
        catch
        {
            r.Dispose();
            throw;
        }
    }

    private void Serve(Func<byte[]> makePayload)
    {
        var deadline = DateTime.UtcNow + _env.Timeout;
        using var listener = new TcpListener(ListenAddress(_env.MasterAddr), _env.MasterPort);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Start(_env.WorldSize);
        while (_peers.Count < _env.WorldSize - 1)
        {
            using var cts = new CancellationTokenSource(Remaining(deadline));
            Socket s;
            try { s = listener.AcceptSocketAsync(cts.Token).AsTask().GetAwaiter().GetResult(); }
            catch (OperationCanceledException)
            {
                var missing = Enumerable.Range(1, _env.WorldSize - 1).Where(i => !_peers.ContainsKey(i));
                throw Error("rendezvous", $"ranks [{string.Join(", ", missing)}] did not join {_env.MasterAddr}:{_env.MasterPort} within {_env.Timeout.TotalSeconds:0.#} s");
            }
            s.ReceiveTimeout = (int)Remaining(deadline).TotalMilliseconds;
            var (type, body) = ReadFrame(s);
            int rank = body.Length == 4 ? BinaryPrimitives.ReadInt32LittleEndian(body) : -1;
            if (type != Join || rank < 1 || rank >= _env.WorldSize || _peers.ContainsKey(rank))
            {
                s.Dispose();
                throw Error("rendezvous", $"a peer sent an invalid join (frame '{(char)type}', rank {rank}); is another job using port {_env.MasterPort}?");
            }
            _peers[rank] = s;
        }
        Payload = makePayload();
        foreach (var s in _peers.Values) WriteFrame(s, PayloadFrame, Payload);
    }

    private void Connect()
    {
        var deadline = DateTime.UtcNow + _env.Timeout;
        Socket? s = null;
        while (s is null)
        {
            var attempt = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                attempt.Connect(_env.MasterAddr, _env.MasterPort);
                s = attempt;
            }
            catch (SocketException e)
            {
                attempt.Dispose();
                if (DateTime.UtcNow >= deadline)
                    throw Error("rendezvous", $"rank 0 did not accept at {_env.MasterAddr}:{_env.MasterPort} within {_env.Timeout.TotalSeconds:0.#} s ({e.SocketErrorCode})");
                Thread.Sleep(100);
            }
        }
        _peers[0] = s;
        var rank = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(rank, _env.Rank);
        WriteFrame(s, Join, rank);
        s.ReceiveTimeout = (int)Remaining(deadline).TotalMilliseconds;
        var (type, body) = ReadFrame(s);
        if (type != PayloadFrame) throw Error("rendezvous", $"rank 0 sent frame '{(char)type}' instead of the payload");
        Payload = body;
    }

    private void StartWatch()
    {
        int silenceMs = (int)Math.Min(int.MaxValue, _env.Timeout.TotalMilliseconds);
        foreach (var (rank, s) in _peers)
        {
            s.ReceiveTimeout = silenceMs;
            var t = new Thread(() => Watch(rank, s)) { IsBackground = true, Name = $"peft-dist-watch-{rank}" };
            _watchers.Add(t);
            t.Start();
        }
        var interval = TimeSpan.FromMilliseconds(Math.Clamp(silenceMs / 4, 50, 1000));
        new Thread(() =>
        {
            while (!_stop.Token.WaitHandle.WaitOne(interval))
                foreach (var s in _peers.Values) TryWrite(s, Heartbeat, []);
        }) { IsBackground = true, Name = "peft-dist-heartbeat" }.Start();
    }

    private void Watch(int peer, Socket s)
    {
        string reason;
        bool peerLeft = false;
        try
        {
            while (true)
            {
                var (type, body) = ReadFrame(s);
                if (type == Quit) peerLeft = true;   // keep draining until its FIN: unread bytes at close would send a reset
                if (type == Abort && !peerLeft) { reason = Encoding.UTF8.GetString(body); break; }
            }
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            if (_closing || peerLeft) return;
            reason = e is SocketException { SocketErrorCode: SocketError.TimedOut } || e.InnerException is SocketException { SocketErrorCode: SocketError.TimedOut }
                ? $"rank {peer} sent nothing for {_env.Timeout.TotalSeconds:0.#} s (hung?)"
                : $"rank {peer} lost: its connection closed (the process died or was killed)";
        }
        if (_closing) return;
        Fail(reason);
    }

    private void Fail(string reason)
    {
        if (Interlocked.Exchange(ref _failed, 1) != 0) return;
        Failure = reason;
        if (_env.Rank == 0)
        {
            var msg = Encoding.UTF8.GetBytes($"rank 0 reports: {reason}");
            foreach (var s in _peers.Values) TryWrite(s, Abort, msg);
        }
        _onPeerLost($"rank {_env.Rank}/{_env.WorldSize}: {reason}");
    }

    /// <summary>
    /// Says goodbye to the peers (so closing is not mistaken for a death): sends Quit and a FIN, waits up to 2 s for
    /// the peers to do the same (the watch threads drain their sockets meanwhile, so the close sends no reset that
    /// could destroy the goodbye in flight), then closes the connections.
    /// </summary>
    public void Dispose()
    {
        if (_closing) return;
        _closing = true;
        _stop.Cancel();
        foreach (var s in _peers.Values)
        {
            TryWrite(s, Quit, []);
            try { s.Shutdown(SocketShutdown.Send); } catch (SocketException) { } catch (ObjectDisposedException) { }
        }
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(2);
        foreach (var t in _watchers) t.Join(Remaining(deadline));
        foreach (var s in _peers.Values) s.Dispose();
        _stop.Dispose();
    }

    private CollectiveException Error(string call, string detail) => new(_env.Rank, _env.WorldSize, call, detail);

    private static TimeSpan Remaining(DateTime deadline)
    {
        var left = deadline - DateTime.UtcNow;
        return left > TimeSpan.FromMilliseconds(1) ? left : TimeSpan.FromMilliseconds(1);
    }

    private static IPAddress ListenAddress(string host) =>
        IPAddress.TryParse(host, out var ip) ? ip : host is "localhost" ? IPAddress.Loopback : IPAddress.Any;

    private static void TryWrite(Socket s, byte type, byte[] body)
    {
        try { WriteFrame(s, type, body); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
    }

    private static void WriteFrame(Socket s, byte type, byte[] body)
    {
        var frame = new byte[5 + body.Length];
        frame[0] = type;
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(1), body.Length);
        body.CopyTo(frame, 5);
        lock (s) s.Send(frame);
    }

    private static (byte Type, byte[] Body) ReadFrame(Socket s)
    {
        var head = new byte[5];
        ReadExactly(s, head);
        int n = BinaryPrimitives.ReadInt32LittleEndian(head.AsSpan(1));
        if (n < 0 || n > 1 << 20) throw new IOException($"rendezvous frame of {n} bytes");
        var body = new byte[n];
        ReadExactly(s, body);
        return (head[0], body);
    }

    private static void ReadExactly(Socket s, byte[] buffer)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = s.Receive(buffer, got, buffer.Length - got, SocketFlags.None);
            if (n == 0) throw new IOException("connection closed");
            got += n;
        }
    }
}
