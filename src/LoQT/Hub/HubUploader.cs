using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LoQT.Hub;

/// <summary>
/// Publishes a folder as one commit: create the repository (existing is fine), ask the Hub which files go through
/// LFS (preupload), upload the LFS objects it does not have yet, then send one ndjson commit with the regular files
/// inline and the LFS files by oid.
/// </summary>
internal sealed class HubUploader(HubHttp http)
{
    private const int PreuploadBatchSize = 256;

    private readonly LfsTransfer lfs = new(http);

    public async Task<string> CreateRepoAsync(HubRepoId repo, bool isPrivate, bool existOk, CancellationToken cancellationToken)
    {
        RequireToken($"Creating '{repo}'");
        var slash = repo.Id.IndexOf('/', StringComparison.Ordinal);
        var payload = new JsonObject
        {
            ["name"] = slash < 0 ? repo.Id : repo.Id[(slash + 1)..],
            ["organization"] = slash < 0 ? null : repo.Id[..slash],
            ["private"] = isPrivate,
            ["type"] = repo.Type.ToString().ToLowerInvariant(),
        }.ToJsonString();
        var repoUrl = $"{http.Endpoint}/{repo.UrlPrefix}{repo.Id}";
        var context = new HubRequestContext($"creating '{repo}'", repo);
        return await http.ExecuteAsync(context, async token =>
        {
            using var response = await http.SendAsync(
                HttpMethod.Post,
                http.Url("api/repos/create"),
                authenticate: true,
                RedirectPolicy.None,
                token,
                content: () => new StringContent(payload, Encoding.UTF8, "application/json")).ConfigureAwait(false);
            if (response.StatusCode == HttpStatusCode.Conflict && existOk)
            {
                return repoUrl;
            }

            if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden && existOk &&
                await ExistsAsync(repo, token).ConfigureAwait(false))
            {
                // No right to create in this namespace, but the repository is already there (as huggingface_hub does).
                return repoUrl;
            }

            await http.EnsureSuccessAsync(response, context, token).ConfigureAwait(false);
            var json = JsonNode.Parse(await http.ReadTextAsync(response, token).ConfigureAwait(false));
            return json?["url"]?.GetValue<string>() ?? repoUrl;
        }, cancellationToken).ConfigureAwait(false);
    }

    public async Task<HubCommitInfo> UploadFolderAsync(
        string folder,
        HubRepoId repo,
        UploadFolderOptions options,
        IProgress<UploadProgress>? progress,
        CancellationToken cancellationToken)
    {
        if (!Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"Folder to upload not found: '{folder}'.");
        }

        if (http.Options.Offline)
        {
            throw new HubOfflineException($"Offline mode is on (HF_HUB_OFFLINE): cannot push '{folder}' to '{repo}'. Unset HF_HUB_OFFLINE to push.");
        }

        RequireToken($"Pushing to '{repo}'");
        var files = await LocalUploadFile.CollectAsync(folder, cancellationToken).ConfigureAwait(false);
        if (files.Count == 0)
        {
            throw new HubException($"Nothing to upload: '{folder}' has no files.");
        }

        if (options.CreateRepo)
        {
            await CreateRepoAsync(repo, options.Private, existOk: true, cancellationToken).ConfigureAwait(false);
        }

        var modes = await PreuploadAsync(repo, options.Revision, files, cancellationToken).ConfigureAwait(false);
        var committed = files.Where(f => !modes[f.PathInRepo].Ignore).ToList();
        foreach (var ignored in files.Where(f => modes[f.PathInRepo].Ignore))
        {
            progress?.Report(new UploadProgress(ignored.PathInRepo, 0, ignored.Size, UploadStatus.Ignored));
        }

        // Empty files cannot go through LFS storage, so they are committed inline (as huggingface_hub does).
        var lfsFiles = committed.Where(f => modes[f.PathInRepo].Lfs && f.Size > 0).ToList();
        var (uploaded, present) = await lfs.UploadAsync(repo, options.Revision, lfsFiles, progress, cancellationToken).ConfigureAwait(false);
        foreach (var inline in committed.Except(lfsFiles))
        {
            progress?.Report(new UploadProgress(inline.PathInRepo, inline.Size, inline.Size, UploadStatus.Inline));
        }

        var (url, oid) = await CommitAsync(repo, options, committed, lfsFiles.Select(static f => f.PathInRepo).ToHashSet(StringComparer.Ordinal), cancellationToken)
            .ConfigureAwait(false);
        return new HubCommitInfo(url, oid, committed.Select(static f => f.PathInRepo).ToList(), uploaded, present);
    }

    private async Task<bool> ExistsAsync(HubRepoId repo, CancellationToken cancellationToken)
    {
        using var response = await http.SendAsync(
            HttpMethod.Get, http.Url($"api/{repo.TypeSegment}/{repo.Id}"), authenticate: true, RedirectPolicy.All, cancellationToken).ConfigureAwait(false);
        return response.IsSuccessStatusCode;
    }

    private async Task<Dictionary<string, (bool Lfs, bool Ignore)>> PreuploadAsync(
        HubRepoId repo, string revision, IReadOnlyList<LocalUploadFile> files, CancellationToken cancellationToken)
    {
        var modes = new Dictionary<string, (bool Lfs, bool Ignore)>(StringComparer.Ordinal);
        var url = http.Url($"api/{repo.TypeSegment}/{repo.Id}/preupload/{Uri.EscapeDataString(revision)}");
        var context = new HubRequestContext($"preparing the upload to '{repo}'", repo, revision);
        foreach (var batch in files.Chunk(PreuploadBatchSize))
        {
            var payload = new JsonObject
            {
                ["files"] = new JsonArray(batch.Select(static f => (JsonNode)new JsonObject
                {
                    ["path"] = f.PathInRepo,
                    ["sample"] = Convert.ToBase64String(f.Sample),
                    ["size"] = f.Size,
                }).ToArray()),
            }.ToJsonString();
            var answer = await http.ExecuteAsync(context, async token =>
            {
                using var response = await http.SendAsync(
                    HttpMethod.Post, url, authenticate: true, RedirectPolicy.None, token,
                    content: () => new StringContent(payload, Encoding.UTF8, "application/json")).ConfigureAwait(false);
                await http.EnsureSuccessAsync(response, context, token).ConfigureAwait(false);
                return JsonNode.Parse(await http.ReadTextAsync(response, token).ConfigureAwait(false));
            }, cancellationToken).ConfigureAwait(false);

            foreach (var entry in (answer?["files"] as JsonArray ?? []).OfType<JsonObject>())
            {
                var path = entry["path"]?.GetValue<string>();
                var mode = entry["uploadMode"]?.GetValue<string>();
                if (path is null || mode is not ("lfs" or "regular"))
                {
                    throw new HubException($"The Hub's preupload answer for '{repo}' is malformed (entry {entry.ToJsonString()}).");
                }

                modes[path] = (mode == "lfs", entry["shouldIgnore"]?.GetValue<bool>() ?? false);
            }
        }

        if (files.FirstOrDefault(f => !modes.ContainsKey(f.PathInRepo)) is { } missing)
        {
            throw new HubException($"The Hub's preupload answer for '{repo}' does not mention '{missing.PathInRepo}'.");
        }

        return modes;
    }

    private async Task<(string Url, string Oid)> CommitAsync(
        HubRepoId repo,
        UploadFolderOptions options,
        IReadOnlyList<LocalUploadFile> files,
        IReadOnlySet<string> lfsPaths,
        CancellationToken cancellationToken)
    {
        var ndjson = await CommitPayload.BuildAsync(options.CommitMessage, options.CommitDescription, files, lfsPaths, cancellationToken).ConfigureAwait(false);
        var url = http.Url($"api/{repo.TypeSegment}/{repo.Id}/commit/{Uri.EscapeDataString(options.Revision)}");
        var context = new HubRequestContext($"committing to '{repo}'", repo, options.Revision);

        // Not retried: if the commit went through but the answer was lost, a retry would commit twice.
        return await http.ExecuteOnceAsync(context, async token =>
        {
            using var response = await http.SendAsync(
                HttpMethod.Post, url, authenticate: true, RedirectPolicy.None, token,
                content: () =>
                {
                    var content = new ByteArrayContent(ndjson);
                    content.Headers.ContentType = new MediaTypeHeaderValue("application/x-ndjson");
                    return content;
                }).ConfigureAwait(false);
            await http.EnsureSuccessAsync(response, context, token).ConfigureAwait(false);
            var json = JsonNode.Parse(await http.ReadTextAsync(response, token).ConfigureAwait(false));
            var commitUrl = json?["commitUrl"]?.GetValue<string>();
            var oid = json?["commitOid"]?.GetValue<string>();
            return commitUrl is not null && oid is not null
                ? (commitUrl, oid)
                : throw new HubException($"The Hub's answer to the commit on '{repo}' has no commitUrl / commitOid.");
        }, cancellationToken).ConfigureAwait(false);
    }

    private void RequireToken(string what)
    {
        if (!http.HasToken)
        {
            throw new HubAuthenticationException(
                $"{what} needs a token with write access: pass --token, set HF_TOKEN, or log in with `huggingface-cli login`.");
        }
    }
}
