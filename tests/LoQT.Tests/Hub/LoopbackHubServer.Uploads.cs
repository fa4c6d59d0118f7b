using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace LoQT.Tests.Hub;

/// <summary>Write side of the loopback Hub: create, preupload, LFS batch / storage / verify, ndjson commits.</summary>
internal sealed partial class LoopbackHubServer
{
    private const string LfsMediaType = "application/vnd.git-lfs+json";

    private readonly Dictionary<(string Key, string Oid), SortedDictionary<int, byte[]>> multipartParts = [];
    private readonly Lock multipartGate = new();

    /// <summary>Create-repo requests as received (JSON bodies).</summary>
    public List<JsonObject> CreateRequests { get; } = [];

    private async Task<bool> RequireWriteTokenAsync(HttpContext context)
    {
        if (BearerToken(context) is null)
        {
            await ErrorAsync(context, 401, null, "You must be authenticated to do this");
            return false;
        }

        return true;
    }

    private async Task CreateRepoAsync(HttpContext context)
    {
        if (!await RequireWriteTokenAsync(context))
        {
            return;
        }

        var body = await ReadJsonAsync(context);
        lock (CreateRequests)
        {
            CreateRequests.Add(body);
        }

        var name = body["name"]?.GetValue<string>() ?? throw new BadRequestException("name is required");
        var organization = body["organization"]?.GetValue<string>();
        var typeSegment = (body["type"]?.GetValue<string>() ?? "model") + "s";
        var id = organization is null ? name : organization + "/" + name;
        var repo = new LoopbackHubRepository(id, typeSegment) { Private = body["private"]?.GetValue<bool>() ?? false };
        if (!repos.TryAdd(Key(typeSegment, id), repo))
        {
            await ErrorAsync(context, 409, null, "You already created this model repo");
            return;
        }

        repo.Commit("main", new Dictionary<string, LoopbackFile>
        {
            [".gitattributes"] = new(Encoding.UTF8.GetBytes(string.Join('\n', LoopbackHubRepository.LfsExtensions.Select(e => $"*{e} filter=lfs diff=lfs merge=lfs -text"))), false),
        }, "initial commit");
        await JsonAsync(context, new JsonObject { ["url"] = $"{Endpoint}/{(typeSegment == "models" ? string.Empty : typeSegment + "/")}{id}", ["name"] = id });
    }

    private async Task PreuploadAsync(HttpContext context, string typeSegment, string id, string revision)
    {
        if (!await RequireWriteTokenAsync(context) || await ReadableRepoAsync(context, typeSegment, id) is not { } repo)
        {
            return;
        }

        if (repo.Resolve(revision) is null)
        {
            await ErrorAsync(context, 404, "RevisionNotFound", $"Invalid rev id: {revision}");
            return;
        }

        var body = await ReadJsonAsync(context);
        var answer = new JsonArray();
        foreach (var file in (body["files"] as JsonArray ?? throw new BadRequestException("files is required")).OfType<JsonObject>())
        {
            var path = file["path"]!.GetValue<string>();
            var size = file["size"]!.GetValue<long>();
            var sample = Convert.FromBase64String(file["sample"]!.GetValue<string>());
            var lfs = LoopbackHubRepository.IsLfsPath(path) || size >= LfsSizeThreshold || sample.Contains((byte)0);
            answer.Add(new JsonObject { ["path"] = path, ["uploadMode"] = lfs ? "lfs" : "regular", ["shouldIgnore"] = false, ["oid"] = null });
        }

        await JsonAsync(context, new JsonObject { ["files"] = answer });
    }

    private async Task LfsBatchAsync(HttpContext context, string typeSegment, string id)
    {
        if (!context.Request.Headers.Accept.ToString().Contains(LfsMediaType, StringComparison.Ordinal) ||
            !context.Request.ContentType!.StartsWith(LfsMediaType, StringComparison.Ordinal))
        {
            await ErrorAsync(context, 406, null, "the LFS batch API speaks " + LfsMediaType);
            return;
        }

        if (!await RequireWriteTokenAsync(context) || await ReadableRepoAsync(context, typeSegment, id) is not { } repo)
        {
            return;
        }

        var body = await ReadJsonAsync(context);
        // huggingface_hub sends "sha256", huggingface.js "sha_256".
        if (body["operation"]?.GetValue<string>() != "upload" || body["hash_algo"]?.GetValue<string>() is not (null or "sha256" or "sha_256"))
        {
            throw new BadRequestException("only sha256 uploads are supported");
        }

        var objects = new JsonArray();
        var multipart = false;
        foreach (var item in (body["objects"] as JsonArray ?? throw new BadRequestException("objects is required")).OfType<JsonObject>())
        {
            var oid = item["oid"]!.GetValue<string>();
            var size = item["size"]!.GetValue<long>();
            var answer = new JsonObject { ["oid"] = oid, ["size"] = size };
            if (!repo.HasLfsObject(oid, out _))
            {
                var verify = new JsonObject { ["href"] = $"{Endpoint}/{id}.git/info/lfs/objects/verify", ["header"] = new JsonObject() };
                JsonObject upload;
                if (size >= MultipartThreshold)
                {
                    multipart = true;
                    var header = new JsonObject { ["chunk_size"] = MultipartChunkSize.ToString(CultureInfo.InvariantCulture) };
                    var parts = (size + MultipartChunkSize - 1) / MultipartChunkSize;
                    for (var part = 1; part <= parts; part++)
                    {
                        header[part.ToString("D5", CultureInfo.InvariantCulture)] = $"{Endpoint}/storage-upload/{repo.StorageKey}/{oid}/part/{part}?X-Amz-Signature=loopback";
                    }

                    upload = new JsonObject { ["href"] = $"{Endpoint}/storage-upload/{repo.StorageKey}/{oid}/complete", ["header"] = header };
                }
                else
                {
                    upload = new JsonObject { ["href"] = $"{Endpoint}/storage-upload/{repo.StorageKey}/{oid}?X-Amz-Signature=loopback" };
                }

                answer["authenticated"] = true;
                answer["actions"] = new JsonObject { ["upload"] = upload, ["verify"] = verify };
            }

            objects.Add(answer);
        }

        context.Response.ContentType = LfsMediaType;
        await context.Response.WriteAsync(new JsonObject { ["transfer"] = multipart ? "multipart" : "basic", ["objects"] = objects }.ToJsonString());
    }

    private async Task StorageUploadAsync(HttpContext context, string method, string storageKey, string oid, string[] rest)
    {
        // Storage URLs are pre-signed: a bearer token there means the client leaked it to a third party.
        if (context.Request.Headers.Authorization.Count > 0)
        {
            await ErrorAsync(context, 400, null, "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter...");
            return;
        }

        var repo = repos.Values.FirstOrDefault(r => r.StorageKey == storageKey);
        if (repo is null)
        {
            await ErrorAsync(context, 404, null, "NoSuchBucket");
            return;
        }

        switch (method, rest)
        {
            case ("PUT", []):
            {
                var content = await ReadBodyAsync(context);
                if (LoopbackHubRepository.Sha256Hex(content) != oid)
                {
                    await ErrorAsync(context, 400, null, "content does not match oid");
                    return;
                }

                repo.StoreLfsObject(oid, content);
                context.Response.StatusCode = 200;
                return;
            }

            case ("PUT", ["part", var number]):
            {
                var content = await ReadBodyAsync(context);
                lock (multipartGate)
                {
                    if (!multipartParts.TryGetValue((storageKey, oid), out var parts))
                    {
                        multipartParts[(storageKey, oid)] = parts = [];
                    }

                    parts[int.Parse(number, CultureInfo.InvariantCulture)] = content;
                }

                context.Response.Headers.ETag = PartEtag(content);
                context.Response.StatusCode = 200;
                return;
            }

            case ("POST", ["complete"]):
            {
                if (!context.Request.ContentType!.StartsWith(LfsMediaType, StringComparison.Ordinal))
                {
                    await ErrorAsync(context, 400, null, "completion must be " + LfsMediaType);
                    return;
                }

                var body = await ReadJsonAsync(context);
                SortedDictionary<int, byte[]>? parts;
                lock (multipartGate)
                {
                    multipartParts.TryGetValue((storageKey, oid), out parts);
                }

                var listed = (body["parts"] as JsonArray ?? []).OfType<JsonObject>()
                    .Select(p => (Number: p["partNumber"]!.GetValue<int>(), Etag: p["etag"]!.GetValue<string>())).ToList();
                if (parts is null || body["oid"]?.GetValue<string>() != oid || listed.Count != parts.Count ||
                    listed.Where((p, i) => p.Number != i + 1 || p.Etag != PartEtag(parts[i + 1])).Any())
                {
                    await ErrorAsync(context, 400, null, "parts do not match the uploaded parts");
                    return;
                }

                var whole = parts.Values.SelectMany(static p => p).ToArray();
                if (LoopbackHubRepository.Sha256Hex(whole) != oid)
                {
                    await ErrorAsync(context, 400, null, "assembled content does not match oid");
                    return;
                }

                repo.StoreLfsObject(oid, whole);
                await JsonAsync(context, new JsonObject());
                return;
            }

            default:
                await ErrorAsync(context, 405, null, "method not allowed");
                return;
        }
    }

    private async Task LfsVerifyAsync(HttpContext context, string typeSegment, string id)
    {
        if (!await RequireWriteTokenAsync(context) || await ReadableRepoAsync(context, typeSegment, id) is not { } repo)
        {
            return;
        }

        var body = await ReadJsonAsync(context);
        var oid = body["oid"]?.GetValue<string>() ?? throw new BadRequestException("oid is required");
        if (!repo.HasLfsObject(oid, out var content) || content.Length != body["size"]?.GetValue<long>())
        {
            await ErrorAsync(context, 404, null, "object not found or wrong size");
            return;
        }

        await JsonAsync(context, new JsonObject { ["success"] = true });
    }

    private async Task CommitAsync(HttpContext context, string typeSegment, string id, string revision)
    {
        if (!await RequireWriteTokenAsync(context) || await ReadableRepoAsync(context, typeSegment, id) is not { } repo)
        {
            return;
        }

        if (context.Request.ContentType != "application/x-ndjson")
        {
            await ErrorAsync(context, 415, null, "commits are application/x-ndjson");
            return;
        }

        if (repo.Resolve(revision) is null || !repo.Refs.ContainsKey(revision))
        {
            await ErrorAsync(context, 404, "RevisionNotFound", $"Invalid rev id: {revision}");
            return;
        }

        var lines = Encoding.UTF8.GetString(await ReadBodyAsync(context)).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => JsonNode.Parse(l) as JsonObject ?? throw new BadRequestException("each line must be an object")).ToList();
        if (lines.Count == 0 || lines[0]["key"]?.GetValue<string>() != "header")
        {
            throw new BadRequestException("the first line must be the header");
        }

        var header = lines[0]["value"]!;
        var changes = new Dictionary<string, LoopbackFile>(StringComparer.Ordinal);
        var operations = new List<(string Kind, string Path)>();
        foreach (var line in lines.Skip(1))
        {
            var kind = line["key"]?.GetValue<string>();
            var value = line["value"] as JsonObject ?? throw new BadRequestException("value missing");
            var path = value["path"]!.GetValue<string>();
            switch (kind)
            {
                case "file" when value["encoding"]?.GetValue<string>() == "base64":
                    changes[path] = new LoopbackFile(Convert.FromBase64String(value["content"]!.GetValue<string>()), false);
                    break;
                case "lfsFile" when value["algo"]?.GetValue<string>() == "sha256":
                    var oid = value["oid"]!.GetValue<string>();
                    if (!repo.HasLfsObject(oid, out var content))
                    {
                        await ErrorAsync(context, 422, null, $"LFS object {oid} for {path} was never uploaded");
                        return;
                    }

                    changes[path] = new LoopbackFile(content, true);
                    break;
                default:
                    throw new BadRequestException("unsupported line: " + line.ToJsonString());
            }

            operations.Add((kind, path));
        }

        var commit = repo.Commit(revision, changes, header["summary"]!.GetValue<string>(), header["description"]?.GetValue<string>() ?? string.Empty, operations);
        await JsonAsync(context, new JsonObject
        {
            ["success"] = true,
            ["commitOid"] = commit.Sha,
            ["commitUrl"] = $"{Endpoint}/{id}/commit/{commit.Sha}",
            ["hookOutput"] = string.Empty,
        });
    }

    private static string PartEtag(byte[] content) => $"\"{Convert.ToHexStringLower(MD5.HashData(content))}\"";
}
