namespace Peft.Transformers.Hub;

/// <summary>
/// What a HEAD on <c>{endpoint}/{repo}/resolve/{revision}/{file}</c> tells (HF <c>HfFileMetadata</c>): the commit the
/// revision points to (X-Repo-Commit), the blob's ETag (X-Linked-Etag for LFS files, else ETag; quotes and W/ removed),
/// its size (X-Linked-Size, else Content-Length) and where to GET it (the absolute redirect target, e.g. a CDN).
/// </summary>
internal sealed record HubFileMetadata(string Commit, string ETag, long? Size, Uri Location);
