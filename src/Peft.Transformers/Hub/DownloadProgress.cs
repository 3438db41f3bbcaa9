namespace Peft.Transformers.Hub;

/// <summary>
/// Progress of one file download (the HF <c>tqdm</c> bar): bytes in the blob so far (a resumed download starts at the
/// bytes already on disk) and the total when the server announced it.
/// </summary>
/// <param name="RepoId">The repo id.</param>
/// <param name="FileName">The file inside the repo.</param>
/// <param name="BytesDone">Bytes written to the blob so far.</param>
/// <param name="TotalBytes">Expected size (X-Linked-Size or Content-Length), null when unknown.</param>
public readonly record struct DownloadProgress(string RepoId, string FileName, long BytesDone, long? TotalBytes);
