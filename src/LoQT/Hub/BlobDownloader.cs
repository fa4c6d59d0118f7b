using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;

namespace LoQT.Hub;

/// <summary>
/// Downloads one blob into <c>blobs/&lt;etag&gt;.incomplete</c>, resuming with <c>Range</c> from whatever an earlier attempt
/// (or an earlier process) left there, then checks size and sha256 before renaming it into place. A blob that fails
/// the check is deleted: nothing unverified reaches <c>blobs/</c> or <c>snapshots/</c>. The caller holds the blob lock.
/// </summary>
internal sealed class BlobDownloader(HubHttp http)
{
    public async Task DownloadAsync(
        HubFileMetadata file,
        string blobPath,
        HubRequestContext context,
        IProgress<DownloadProgress>? progress,
        CancellationToken cancellationToken)
    {
        var incomplete = HubCacheLayout.IncompletePath(blobPath);
        Directory.CreateDirectory(Path.GetDirectoryName(blobPath)!);

        await http.ExecuteAsync(
            context,
            token => AttemptAsync(file, incomplete, context, progress, token),
            cancellationToken).ConfigureAwait(false);

        var size = new FileInfo(incomplete).Length;
        if (size != file.Size)
        {
            File.Delete(incomplete);
            throw new HubIntegrityException(
                $"Downloaded '{file.Path}' from '{context.Repo}' has {size} bytes but the Hub announced {file.Size}; the partial file was deleted and nothing was cached. Retry the download.");
        }

        if (file.Sha256 is { } expected)
        {
            var actual = await Sha256HexAsync(incomplete, cancellationToken).ConfigureAwait(false);
            if (actual != expected)
            {
                File.Delete(incomplete);
                throw new HubIntegrityException(
                    $"Downloaded '{file.Path}' from '{context.Repo}' does not match its sha256 (expected {expected}, got {actual}); " +
                    "the partial file was deleted and nothing was cached. Retry; if it keeps happening, something between you and the Hub is corrupting the data.");
            }
        }

        File.Move(incomplete, blobPath, overwrite: true);
        progress?.Report(new DownloadProgress(file.Path, size, file.Size, DownloadStatus.Completed));
    }

    public static async Task<string> Sha256HexAsync(string path, CancellationToken cancellationToken)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        var hash = await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false);
        return Convert.ToHexStringLower(hash);
    }

    private async Task<bool> AttemptAsync(
        HubFileMetadata file,
        string incomplete,
        HubRequestContext context,
        IProgress<DownloadProgress>? progress,
        CancellationToken cancellationToken)
    {
        var have = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
        if (have > file.Size)
        {
            // Longer than the file can be: not a prefix of it, start over.
            File.Delete(incomplete);
            have = 0;
        }

        progress?.Report(new DownloadProgress(file.Path, have, file.Size, DownloadStatus.Started));
        if (have == file.Size)
        {
            return true;
        }

        using var response = await http.SendAsync(
            HttpMethod.Get,
            file.DownloadUrl,
            authenticate: true,
            RedirectPolicy.All,
            cancellationToken,
            request =>
            {
                request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
                if (have > 0)
                {
                    request.Headers.Range = new RangeHeaderValue(have, null);
                }
            }).ConfigureAwait(false);

        if (have > 0 && response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            // The partial file does not fit the object (it changed, or the file was damaged): start over next attempt.
            File.Delete(incomplete);
            throw new TransientHubStatusException($"{context.Operation}: the server refused to resume at byte {have}", response.StatusCode, TimeSpan.Zero);
        }

        await http.EnsureSuccessAsync(response, context, cancellationToken).ConfigureAwait(false);

        var resumed = response.StatusCode == HttpStatusCode.PartialContent;
        if (resumed && response.Content.Headers.ContentRange?.From != have)
        {
            File.Delete(incomplete);
            throw new TransientHubStatusException($"{context.Operation}: the server resumed at the wrong offset", response.StatusCode, TimeSpan.Zero);
        }

        await using var output = new FileStream(incomplete, FileMode.OpenOrCreate, FileAccess.Write, FileShare.None, 1 << 16);
        if (resumed)
        {
            output.Seek(have, SeekOrigin.Begin);
        }
        else
        {
            // A full body (the server ignored Range): overwrite rather than append to what we had.
            output.SetLength(0);
            have = 0;
        }

        var received = have;
        await http.CopyBodyAsync(
            response,
            output,
            chunk =>
            {
                received += chunk;
                progress?.Report(new DownloadProgress(file.Path, received, file.Size, DownloadStatus.Downloading));
            },
            cancellationToken).ConfigureAwait(false);
        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }
}
