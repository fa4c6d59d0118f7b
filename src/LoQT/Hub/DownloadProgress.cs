namespace LoQT.Hub;

/// <summary>Where one file's download stands; reported through <see cref="IProgress{T}"/> for progress bars.</summary>
/// <param name="Path">Path of the file inside the repository.</param>
/// <param name="BytesDownloaded">Bytes on disk so far (resumed bytes included).</param>
/// <param name="TotalBytes">Size of the file when known.</param>
/// <param name="Status">What just happened.</param>
public sealed record DownloadProgress(string Path, long BytesDownloaded, long? TotalBytes, DownloadStatus Status);

/// <summary>Stage of a file download.</summary>
public enum DownloadStatus
{
    /// <summary>The transfer is starting (or resuming at <see cref="DownloadProgress.BytesDownloaded"/>).</summary>
    Started,

    /// <summary>More bytes arrived.</summary>
    Downloading,

    /// <summary>The file is verified and in the cache.</summary>
    Completed,

    /// <summary>The file was already in the cache; nothing was transferred.</summary>
    Cached,
}
