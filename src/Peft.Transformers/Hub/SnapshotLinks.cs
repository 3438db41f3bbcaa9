namespace Peft.Transformers.Hub;

/// <summary>
/// Makes <c>snapshots/{commit}/{file}</c> point at <c>blobs/{etag}</c> as huggingface_hub does
/// (<c>_create_symlink</c>): a RELATIVE symlink where the OS allows it (so the cache folder can move), else a copy.
/// </summary>
internal static class SnapshotLinks
{
    public static void Link(string blob, string pointer)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(pointer)!);
        if (File.Exists(pointer) || new FileInfo(pointer).LinkTarget is not null) File.Delete(pointer);
        var relative = Path.GetRelativePath(Path.GetDirectoryName(pointer)!, blob);
        try
        {
            File.CreateSymbolicLink(pointer, relative);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            var tmp = pointer + ".tmp" + Environment.ProcessId;
            File.Copy(blob, tmp, overwrite: true);
            File.Move(tmp, pointer, overwrite: true);
        }
    }
}
