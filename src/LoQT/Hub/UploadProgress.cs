namespace LoQT.Hub;

/// <summary>What happened to one file of an upload.</summary>
/// <param name="Path">Path of the file inside the repository.</param>
/// <param name="BytesSent">Bytes sent so far for this file.</param>
/// <param name="TotalBytes">Size of the file.</param>
/// <param name="Status">Stage reached.</param>
public sealed record UploadProgress(string Path, long BytesSent, long TotalBytes, UploadStatus Status);

/// <summary>Stage of one file in an upload.</summary>
public enum UploadStatus
{
    /// <summary>LFS bytes are being sent (multipart uploads report once per part).</summary>
    Uploading,

    /// <summary>The LFS object was uploaded and verified.</summary>
    Uploaded,

    /// <summary>The Hub already had this LFS object: nothing was sent.</summary>
    AlreadyPresent,

    /// <summary>A regular (non-LFS) file: its content goes inline in the commit.</summary>
    Inline,

    /// <summary>The Hub's ignore rules exclude the file from the commit.</summary>
    Ignored,
}
