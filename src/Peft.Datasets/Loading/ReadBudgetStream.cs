namespace Peft.Datasets;

/// <summary>
/// A read-only view of a seekable stream that allows a fixed amount of reading and then throws a
/// <see cref="DatasetLoadException"/> naming the file. Every read call costs at least one unit (so a loop that keeps
/// reading zero bytes at the end of the file also runs out). Used around third-party readers (Parquet.Net) whose page
/// loops trust offsets and sizes from the file: any such loop reads the stream on each turn, so a budget of a few
/// times the file's length guarantees it ends, whatever the metadata claims.
/// </summary>
internal sealed class ReadBudgetStream(Stream inner, string path, long budget, bool leaveOpen = true) : Stream
{
    private readonly long _budget = budget;
    private long _left = budget;

    /// <summary>Units (bytes, at least one per call) still allowed.</summary>
    public long Left => _left;

    /// <summary>Restores the full budget (for example per row group).</summary>
    public void Reset() => _left = _budget;

    private void Charge(long n)
    {
        _left -= Math.Max(1, n);
        if (_left < 0)
            throw new DatasetLoadException(path, null, null,
                $"the reader went on reading past {_budget} bytes of a {inner.Length}-byte file: its offsets or page sizes are corrupt");
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        int n = inner.Read(buffer, offset, count);
        Charge(n);
        return n;
    }

    public override int Read(Span<byte> buffer)
    {
        int n = inner.Read(buffer);
        Charge(n);
        return n;
    }

    public override int ReadByte()
    {
        Charge(1);
        return inner.ReadByte();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        Charge(n);
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Length => inner.Length;

    public override long Position
    {
        get => inner.Position;
        set => Seek(value, SeekOrigin.Begin);
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        Charge(1);
        return inner.Seek(offset, origin);
    }

    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !leaveOpen) inner.Dispose();
        base.Dispose(disposing);
    }
}
