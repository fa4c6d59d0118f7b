using System.Security.Cryptography;

namespace LoQT.Hub;

/// <summary>One local file to upload: its repository path, size, sha256 (the LFS oid) and the first 512 bytes (the preupload sample).</summary>
internal sealed record LocalUploadFile(string PathInRepo, string FullPath, long Size, string Sha256, byte[] Sample)
{
    public const int SampleSize = 512;

    /// <summary>Every file under <paramref name="folder"/> except git and huggingface_hub bookkeeping folders, sorted by path.</summary>
    public static async Task<IReadOnlyList<LocalUploadFile>> CollectAsync(string folder, CancellationToken cancellationToken)
    {
        var root = Path.GetFullPath(folder);
        var result = new List<LocalUploadFile>();
        foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var relative = Path.GetRelativePath(root, file).Replace(Path.DirectorySeparatorChar, '/');
            if (relative.StartsWith(".git/", StringComparison.Ordinal) || relative.StartsWith(".cache/huggingface/", StringComparison.Ordinal))
            {
                continue;
            }

            result.Add(await ReadAsync(relative, file, cancellationToken).ConfigureAwait(false));
        }

        return result;
    }

    private static async Task<LocalUploadFile> ReadAsync(string pathInRepo, string fullPath, CancellationToken cancellationToken)
    {
        await using var stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        var sample = new byte[(int)Math.Min(SampleSize, stream.Length)];
        await stream.ReadExactlyAsync(sample, cancellationToken).ConfigureAwait(false);
        stream.Position = 0;
        var sha = await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false);
        return new LocalUploadFile(pathInRepo, fullPath, stream.Length, Convert.ToHexStringLower(sha), sample);
    }
}
