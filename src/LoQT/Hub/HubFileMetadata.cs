namespace LoQT.Hub;

/// <summary>What the Hub says about one file at one revision (from the headers of <c>HEAD …/resolve/…</c>).</summary>
/// <param name="Path">Path of the file inside the repository.</param>
/// <param name="CommitHash">Commit the revision resolved to (<c>X-Repo-Commit</c>).</param>
/// <param name="Etag">Blob name in the cache: the sha256 for LFS files (<c>X-Linked-Etag</c>), the git blob id otherwise (<c>ETag</c>).</param>
/// <param name="Size">Size in bytes (<c>X-Linked-Size</c> or <c>Content-Length</c>).</param>
/// <param name="DownloadUrl">Where the bytes are: the storage URL the Hub redirects to, or the resolve URL itself.</param>
/// <param name="IsLfs">Whether the file is stored with Git LFS (its etag is then its sha256 and is verified).</param>
public sealed record HubFileMetadata(string Path, string CommitHash, string Etag, long Size, Uri DownloadUrl, bool IsLfs)
{
    /// <summary>The sha256 the downloaded bytes must have (LFS files), or null when the Hub gives none.</summary>
    public string? Sha256 => IsLfs && Etag.Length == 64 && Etag.All(Uri.IsHexDigit) ? Etag.ToLowerInvariant() : null;
}
