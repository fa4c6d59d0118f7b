using System.Net.Http.Headers;

namespace LoQT.Hub;

/// <summary>
/// Puts one repository file into the cache the way huggingface_hub does: ask the Hub for its metadata
/// (<c>HEAD …/resolve/{revision}/{path}</c>), record <c>refs/{revision}</c>, download the blob under its lock unless it is
/// already there, and link <c>snapshots/{commit}/{path}</c> to it.
/// </summary>
internal sealed class HubFileDownloader(HubHttp http)
{
    private readonly BlobDownloader blobs = new(http);

    private HubOptions Options => http.Options;

    /// <summary>Returns the snapshot path of the file (a symlink into <c>blobs/</c>).</summary>
    public async Task<string> DownloadAsync(
        HubRepoId repo,
        string path,
        string revision,
        IProgress<DownloadProgress>? progress,
        CancellationToken cancellationToken)
    {
        var layout = new HubCacheLayout(Options.CacheDir, repo);
        if (HubCacheLayout.IsCommitHash(revision))
        {
            var known = layout.PointerPath(revision, path);
            if (File.Exists(known))
            {
                ReportCached(progress, path, known);
                return known;
            }
        }

        if (Options.Offline)
        {
            return FromCacheOrThrow(layout, path, revision, progress);
        }

        var metadata = await GetMetadataAsync(repo, path, revision, cancellationToken).ConfigureAwait(false);
        var pointer = layout.PointerPath(metadata.CommitHash, path);
        if (File.Exists(pointer))
        {
            layout.WriteRef(revision, metadata.CommitHash);
            ReportCached(progress, path, pointer);
            return pointer;
        }

        layout.WriteRef(revision, metadata.CommitHash);
        var blob = layout.BlobPath(metadata.Etag);
        using (await BlobLock.AcquireAsync(layout.LockPath(metadata.Etag), Options.Log, cancellationToken).ConfigureAwait(false))
        {
            if (File.Exists(blob))
            {
                ReportCached(progress, path, blob);
            }
            else
            {
                var context = new HubRequestContext($"downloading '{path}' from '{repo}'", repo, revision, path);
                await blobs.DownloadAsync(metadata, blob, context, progress, cancellationToken).ConfigureAwait(false);
            }

            HubCacheLayout.CreatePointer(blob, pointer);
        }

        return pointer;
    }

    /// <summary>Metadata of one file: <c>HEAD</c> on the resolve URL, following same-host redirects but not the one to storage.</summary>
    public async Task<HubFileMetadata> GetMetadataAsync(HubRepoId repo, string path, string revision, CancellationToken cancellationToken)
    {
        var url = ResolveUrl(repo, path, revision);
        var context = new HubRequestContext($"looking up '{path}' in '{repo}'", repo, revision, path);
        return await http.ExecuteAsync(context, async token =>
        {
            using var response = await http.SendAsync(
                HttpMethod.Head,
                url,
                authenticate: true,
                RedirectPolicy.RelativeOnly,
                token,
                static request => request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"))).ConfigureAwait(false);
            var isRedirect = (int)response.StatusCode is >= 300 and < 400;
            if (!isRedirect)
            {
                await http.EnsureSuccessAsync(response, context, token).ConfigureAwait(false);
            }

            return ReadMetadata(response, path, context, isRedirect, url);
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary><c>{endpoint}/{prefix}{repo}/resolve/{revision}/{path}</c> with the revision escaped as one segment.</summary>
    public Uri ResolveUrl(HubRepoId repo, string path, string revision) =>
        http.Url($"{repo.UrlPrefix}{repo.Id}/resolve/{Uri.EscapeDataString(revision)}/{EscapePath(path)}");

    public static string EscapePath(string path) => string.Join('/', path.Split('/').Select(Uri.EscapeDataString));

    private static HubFileMetadata ReadMetadata(HttpResponseMessage response, string path, HubRequestContext context, bool isRedirect, Uri requestUrl)
    {
        var commit = Header(response, "X-Repo-Commit");
        var linkedEtag = Header(response, "X-Linked-Etag");
        var etag = NormalizeEtag(linkedEtag ?? Header(response, "ETag"));
        var sizeText = Header(response, "X-Linked-Size") ?? (isRedirect ? null : response.Content.Headers.ContentLength?.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (commit is null)
        {
            throw new HubException(
                $"{context.Operation}: the server's answer has no X-Repo-Commit header, so it does not look like a Hugging Face Hub (check HF_ENDPOINT, proxy and firewall settings).");
        }

        if (etag is null || !long.TryParse(sizeText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var size))
        {
            throw new HubException($"{context.Operation}: the Hub gave no ETag or size for the file, so it cannot be cached reliably.");
        }

        var location = isRedirect && response.Headers.Location is { } target
            ? (target.IsAbsoluteUri ? target : new Uri(response.RequestMessage?.RequestUri ?? requestUrl, target))
            : response.RequestMessage?.RequestUri ?? requestUrl;
        return new HubFileMetadata(path, commit, etag, size, location, linkedEtag is not null);
    }

    private static string? NormalizeEtag(string? etag)
    {
        if (etag is null)
        {
            return null;
        }

        if (etag.StartsWith("W/", StringComparison.Ordinal))
        {
            etag = etag[2..];
        }

        return etag.Trim('"');
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? values.FirstOrDefault()
            : null;

    private static void ReportCached(IProgress<DownloadProgress>? progress, string path, string file)
    {
        if (progress is not null)
        {
            var size = File.Exists(file) ? new FileInfo(file).Length : 0;
            progress.Report(new DownloadProgress(path, size, size, DownloadStatus.Cached));
        }
    }

    private string FromCacheOrThrow(HubCacheLayout layout, string path, string revision, IProgress<DownloadProgress>? progress)
    {
        var commit = layout.ResolveCommit(revision);
        if (commit is not null)
        {
            var pointer = layout.PointerPath(commit, path);
            if (File.Exists(pointer))
            {
                ReportCached(progress, path, pointer);
                return pointer;
            }
        }

        throw new HubOfflineException(
            $"Offline mode is on (HF_HUB_OFFLINE) and '{path}' of '{layout.Repo}' at revision '{revision}' is not in the cache {Options.CacheDir}. " +
            "Download it once while online, or unset HF_HUB_OFFLINE.");
    }
}
