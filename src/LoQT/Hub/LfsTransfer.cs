using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LoQT.Hub;

/// <summary>
/// Git LFS uploads as the Hub speaks them: the batch API says, per object, where to send it (or nothing when the
/// Hub already has it); then a basic PUT, or a multipart upload (one PUT per numbered part URL of <c>chunk_size</c>
/// bytes, then a completion POST with the parts' ETags), then the verify action.
/// </summary>
internal sealed class LfsTransfer(HubHttp http)
{
    private const string LfsMediaType = "application/vnd.git-lfs+json";
    private const int BatchSize = 256;

    /// <summary>Uploads what the Hub is missing; returns (objects uploaded, objects already present).</summary>
    public async Task<(int Uploaded, int AlreadyPresent)> UploadAsync(
        HubRepoId repo,
        string revision,
        IReadOnlyList<LocalUploadFile> files,
        IProgress<UploadProgress>? progress,
        CancellationToken cancellationToken)
    {
        var byOid = files.GroupBy(static f => f.Sha256).ToDictionary(static g => g.Key, static g => g.ToList());
        int uploaded = 0, present = 0;
        foreach (var batch in byOid.Values.Select(static g => g[0]).Chunk(BatchSize))
        {
            var objects = await BatchAsync(repo, revision, batch, cancellationToken).ConfigureAwait(false);
            foreach (var item in objects)
            {
                var oid = item["oid"]?.GetValue<string>() ?? throw Malformed(repo, "an object without 'oid'");
                if (!byOid.TryGetValue(oid, out var sameContent))
                {
                    throw Malformed(repo, $"an object that was not asked for ({oid})");
                }

                var file = sameContent[0];
                if (item["error"] is JsonObject error)
                {
                    throw new HubException(
                        $"The Hub refused the LFS upload of '{file.PathInRepo}' to '{repo}': {error["message"]} (code {error["code"]}).");
                }

                var actions = item["actions"] as JsonObject;
                if (actions?["upload"] is not JsonObject upload)
                {
                    present++;
                    foreach (var same in sameContent)
                    {
                        progress?.Report(new UploadProgress(same.PathInRepo, 0, same.Size, UploadStatus.AlreadyPresent));
                    }

                    continue;
                }

                await UploadObjectAsync(repo, file, upload, progress, cancellationToken).ConfigureAwait(false);
                if (actions["verify"] is JsonObject verify)
                {
                    await VerifyAsync(repo, file, verify, cancellationToken).ConfigureAwait(false);
                }

                uploaded++;
                foreach (var same in sameContent)
                {
                    progress?.Report(new UploadProgress(same.PathInRepo, same.Size, same.Size, UploadStatus.Uploaded));
                }
            }
        }

        return (uploaded, present);
    }

    private async Task<List<JsonObject>> BatchAsync(HubRepoId repo, string revision, IReadOnlyList<LocalUploadFile> files, CancellationToken cancellationToken)
    {
        var payload = new JsonObject
        {
            ["operation"] = "upload",
            ["transfers"] = new JsonArray("basic", "multipart"),
            ["objects"] = new JsonArray(files.Select(static f => (JsonNode)new JsonObject { ["oid"] = f.Sha256, ["size"] = f.Size }).ToArray()),
            ["hash_algo"] = "sha256",
            ["ref"] = new JsonObject { ["name"] = revision },
        }.ToJsonString();
        var url = http.Url($"{repo.UrlPrefix}{repo.Id}.git/info/lfs/objects/batch");
        var context = new HubRequestContext($"asking the Hub where to upload LFS files of '{repo}'", repo, revision);
        return await http.ExecuteAsync(context, async token =>
        {
            using var response = await http.SendAsync(
                HttpMethod.Post,
                url,
                authenticate: true,
                RedirectPolicy.None,
                token,
                static request => request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(LfsMediaType)),
                () => new StringContent(payload, Encoding.UTF8, new MediaTypeHeaderValue(LfsMediaType))).ConfigureAwait(false);
            await http.EnsureSuccessAsync(response, context, token).ConfigureAwait(false);
            var json = JsonNode.Parse(await http.ReadTextAsync(response, token).ConfigureAwait(false));
            return (json?["objects"] as JsonArray)?.OfType<JsonObject>().ToList() ?? throw Malformed(repo, "no 'objects' list");
        }, cancellationToken).ConfigureAwait(false);
    }

    private async Task UploadObjectAsync(HubRepoId repo, LocalUploadFile file, JsonObject upload, IProgress<UploadProgress>? progress, CancellationToken cancellationToken)
    {
        var href = Href(repo, upload);
        var header = upload["header"] as JsonObject;
        if (header?["chunk_size"] is { } chunkSizeNode)
        {
            var chunkText = chunkSizeNode.GetValueKind() == JsonValueKind.Number ? chunkSizeNode.ToJsonString() : chunkSizeNode.GetValue<string>();
            if (!long.TryParse(chunkText, NumberStyles.None, CultureInfo.InvariantCulture, out var chunkSize) || chunkSize <= 0)
            {
                throw Malformed(repo, $"a chunk_size that is not a positive integer ('{chunkText}')");
            }

            await UploadMultipartAsync(repo, file, href, header, chunkSize, progress, cancellationToken).ConfigureAwait(false);
            return;
        }

        var context = new HubRequestContext($"uploading '{file.PathInRepo}' to '{repo}'", repo, Path: file.PathInRepo);
        progress?.Report(new UploadProgress(file.PathInRepo, 0, file.Size, UploadStatus.Uploading));
        await http.ExecuteAsync(context, async token =>
        {
            // Upload URLs are pre-signed: no token goes with them.
            using var response = await http.SendAsync(
                HttpMethod.Put,
                href,
                authenticate: false,
                RedirectPolicy.None,
                token,
                content: () => FileContent(file.FullPath)).ConfigureAwait(false);
            await http.EnsureSuccessAsync(response, context, token).ConfigureAwait(false);
            return true;
        }, cancellationToken).ConfigureAwait(false);
    }

    private async Task UploadMultipartAsync(
        HubRepoId repo,
        LocalUploadFile file,
        Uri completionUrl,
        JsonObject header,
        long chunkSize,
        IProgress<UploadProgress>? progress,
        CancellationToken cancellationToken)
    {
        var partUrls = header
            .Where(static kv => kv.Key.Length > 0 && kv.Key.All(char.IsAsciiDigit))
            .OrderBy(static kv => int.Parse(kv.Key, CultureInfo.InvariantCulture))
            .Select(kv => new Uri(kv.Value?.GetValue<string>() ?? throw Malformed(repo, $"an empty URL for part {kv.Key}"), UriKind.Absolute))
            .ToList();
        var expectedParts = (file.Size + chunkSize - 1) / chunkSize;
        if (partUrls.Count != expectedParts)
        {
            throw Malformed(repo, $"{partUrls.Count} part URLs for '{file.PathInRepo}' where {expectedParts} chunks of {chunkSize} bytes are needed");
        }

        var etags = new List<string>(partUrls.Count);
        long sent = 0;
        for (var part = 0; part < partUrls.Count; part++)
        {
            var offset = part * chunkSize;
            var length = (int)Math.Min(chunkSize, file.Size - offset);
            var chunk = new byte[length];
            await using (var stream = new FileStream(file.FullPath, FileMode.Open, FileAccess.Read, FileShare.Read))
            {
                stream.Position = offset;
                await stream.ReadExactlyAsync(chunk, cancellationToken).ConfigureAwait(false);
            }

            var partNumber = part + 1;
            var context = new HubRequestContext($"uploading part {partNumber}/{partUrls.Count} of '{file.PathInRepo}' to '{repo}'", repo, Path: file.PathInRepo);
            var etag = await http.ExecuteAsync(context, async token =>
            {
                using var response = await http.SendAsync(
                    HttpMethod.Put,
                    partUrls[part],
                    authenticate: false,
                    RedirectPolicy.None,
                    token,
                    content: () => new ByteArrayContent(chunk)).ConfigureAwait(false);
                await http.EnsureSuccessAsync(response, context, token).ConfigureAwait(false);
                return response.Headers.TryGetValues("ETag", out var values) && values.FirstOrDefault() is { Length: > 0 } value
                    ? value
                    : throw Malformed(repo, $"no ETag for part {partNumber} of '{file.PathInRepo}'");
            }, cancellationToken).ConfigureAwait(false);
            etags.Add(etag);
            sent += length;
            progress?.Report(new UploadProgress(file.PathInRepo, sent, file.Size, UploadStatus.Uploading));
        }

        var completion = new JsonObject
        {
            ["oid"] = file.Sha256,
            ["parts"] = new JsonArray(etags.Select(static (etag, i) => (JsonNode)new JsonObject { ["partNumber"] = i + 1, ["etag"] = etag }).ToArray()),
        }.ToJsonString();
        var completeContext = new HubRequestContext($"completing the multipart upload of '{file.PathInRepo}' to '{repo}'", repo, Path: file.PathInRepo);
        await http.ExecuteAsync(completeContext, async token =>
        {
            using var response = await http.SendAsync(
                HttpMethod.Post,
                completionUrl,
                authenticate: false,
                RedirectPolicy.None,
                token,
                static request => request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(LfsMediaType)),
                () => new StringContent(completion, Encoding.UTF8, new MediaTypeHeaderValue(LfsMediaType))).ConfigureAwait(false);
            await http.EnsureSuccessAsync(response, completeContext, token).ConfigureAwait(false);
            return true;
        }, cancellationToken).ConfigureAwait(false);
    }

    private async Task VerifyAsync(HubRepoId repo, LocalUploadFile file, JsonObject verify, CancellationToken cancellationToken)
    {
        var href = Href(repo, verify);
        var body = new JsonObject { ["oid"] = file.Sha256, ["size"] = file.Size }.ToJsonString();
        var context = new HubRequestContext($"verifying the upload of '{file.PathInRepo}' to '{repo}'", repo, Path: file.PathInRepo);
        await http.ExecuteAsync(context, async token =>
        {
            using var response = await http.SendAsync(
                HttpMethod.Post,
                href,
                authenticate: true,
                RedirectPolicy.None,
                token,
                content: () => new StringContent(body, Encoding.UTF8, "application/json")).ConfigureAwait(false);
            await http.EnsureSuccessAsync(response, context, token).ConfigureAwait(false);
            return true;
        }, cancellationToken).ConfigureAwait(false);
    }

    private static StreamContent FileContent(string path)
    {
        var content = new StreamContent(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return content;
    }

    private static Uri Href(HubRepoId repo, JsonObject action) =>
        action["href"]?.GetValue<string>() is { } href && Uri.TryCreate(href, UriKind.Absolute, out var uri)
            ? uri
            : throw Malformed(repo, "an action without an absolute 'href'");

    private static HubException Malformed(HubRepoId repo, string what) =>
        new($"The Hub's LFS answer for '{repo}' is malformed: {what}.");
}
