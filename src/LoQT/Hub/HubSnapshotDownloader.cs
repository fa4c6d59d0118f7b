using System.Text.Json;
using System.Text.Json.Nodes;

namespace LoQT.Hub;

/// <summary>
/// Downloads a set of files of one revision into the cache in parallel (one <see cref="HubFileDownloader"/> call per
/// file, all pinned to the commit the revision resolved to), records the ref, and optionally copies the result out.
/// </summary>
internal sealed class HubSnapshotDownloader(HubHttp http, HubFileDownloader files)
{
    private HubOptions Options => http.Options;

    public async Task<HubRepoInfo> GetRepoInfoAsync(HubRepoId repo, string revision, CancellationToken cancellationToken)
    {
        var url = http.Url($"api/{repo.TypeSegment}/{repo.Id}/revision/{Uri.EscapeDataString(revision)}");
        var context = new HubRequestContext($"reading '{repo}' at '{revision}'", repo, revision);
        return await http.ExecuteAsync(context, async token =>
        {
            using var response = await http.SendAsync(HttpMethod.Get, url, authenticate: true, RedirectPolicy.All, token).ConfigureAwait(false);
            await http.EnsureSuccessAsync(response, context, token).ConfigureAwait(false);
            var text = await http.ReadTextAsync(response, token).ConfigureAwait(false);
            return ParseRepoInfo(text, repo);
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Downloads the files of <paramref name="revision"/> that <paramref name="select"/> keeps and returns the snapshot
    /// folder. Offline, or when the Hub cannot be reached at all, a cached snapshot of the revision is returned instead.
    /// </summary>
    public async Task<string> DownloadAsync(
        HubRepoId repo,
        string revision,
        Func<IReadOnlyList<string>, IReadOnlyList<string>> select,
        Func<string, bool> isUsableCache,
        IProgress<DownloadProgress>? progress,
        CancellationToken cancellationToken)
    {
        var layout = new HubCacheLayout(Options.CacheDir, repo);
        if (Options.Offline)
        {
            return layout.TryGetSnapshotDir(revision) is { } cached && isUsableCache(cached)
                ? cached
                : throw new HubOfflineException(
                    $"Offline mode is on (HF_HUB_OFFLINE) and '{repo}' at revision '{revision}' is not in the cache {Options.CacheDir}. " +
                    $"Download it once while online (loqt download {repo}), or unset HF_HUB_OFFLINE.");
        }

        HubRepoInfo info;
        try
        {
            info = await GetRepoInfoAsync(repo, revision, cancellationToken).ConfigureAwait(false);
        }
        catch (HubRequestFailedException failure) when (layout.TryGetSnapshotDir(revision) is { } cached && isUsableCache(cached))
        {
            Options.Log?.Invoke($"{failure.Message} Using the cached snapshot {cached}.");
            return cached;
        }

        var wanted = select(info.Files);
        layout.WriteRef(revision, info.Sha);
        var snapshot = layout.SnapshotDir(info.Sha);
        Directory.CreateDirectory(snapshot);

        var parallel = new ParallelOptions
        {
            MaxDegreeOfParallelism = Math.Max(1, Options.MaxParallelDownloads),
            CancellationToken = cancellationToken,
        };
        await Parallel.ForEachAsync(wanted, parallel, async (path, token) =>
            await files.DownloadAsync(repo, path, info.Sha, progress, token).ConfigureAwait(false)).ConfigureAwait(false);
        return snapshot;
    }

    /// <summary>Copies <paramref name="paths"/> of a snapshot (following its symlinks) into <paramref name="localDir"/>, each atomically.</summary>
    public static string CopyToLocalDir(string snapshot, IEnumerable<string> paths, string localDir)
    {
        var target = Path.GetFullPath(localDir);
        foreach (var path in paths)
        {
            var source = Path.Combine([snapshot, .. path.Split('/')]);
            var destination = Path.Combine([target, .. path.Split('/')]);
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            var temp = $"{destination}.{Guid.NewGuid():N}.tmp";
            File.Copy(source, temp);
            File.Move(temp, destination, overwrite: true);
        }

        return target;
    }

    /// <summary>Files under a snapshot folder, as repository paths.</summary>
    public static IReadOnlyList<string> ListSnapshot(string snapshot) =>
        Directory.EnumerateFiles(snapshot, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(snapshot, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Order(StringComparer.Ordinal)
            .ToList();

    private static HubRepoInfo ParseRepoInfo(string text, HubRepoId repo)
    {
        try
        {
            var json = JsonNode.Parse(text) as JsonObject ?? throw new JsonException("not an object");
            var sha = json["sha"]?.GetValue<string>() ?? throw new JsonException("no 'sha'");
            var siblings = json["siblings"] as JsonArray ?? [];
            var names = siblings
                .Select(static s => s?["rfilename"]?.GetValue<string>())
                .OfType<string>()
                .ToList();
            return new HubRepoInfo(json["id"]?.GetValue<string>() ?? repo.Id, sha, names);
        }
        catch (Exception error) when (error is JsonException or InvalidOperationException or FormatException)
        {
            throw new HubException($"The Hub's description of '{repo}' could not be read ({error.Message}).");
        }
    }
}
