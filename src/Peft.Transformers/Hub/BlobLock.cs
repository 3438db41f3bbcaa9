namespace Peft.Transformers.Hub;

/// <summary>
/// An exclusive lock on one blob across processes: <c>{cache}/.locks/models--org--name/{etag}.lock</c> opened with
/// <see cref="FileShare.None"/> (an <c>flock</c> on Unix, as Python's <c>filelock</c> takes on the same path), retried
/// every 50 ms until <see cref="HubDownloadOptions.LockTimeout"/>. The lock file stays, as in Python.
/// </summary>
internal sealed class BlobLock : IDisposable
{
    private readonly FileStream _stream;

    private BlobLock(FileStream stream) => _stream = stream;

    public static async Task<BlobLock> AcquireAsync(string path, TimeSpan timeout, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                return new BlobLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50, ct).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new TimeoutException($"another process held the download lock '{path}' for longer than {timeout}.", e);
            }
        }
    }

    public void Dispose() => _stream.Dispose();
}
