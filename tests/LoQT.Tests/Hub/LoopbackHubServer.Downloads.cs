using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace LoQT.Tests.Hub;

/// <summary>Read side of the loopback Hub: revision API, resolve, storage downloads.</summary>
internal sealed partial class LoopbackHubServer
{
    private async Task RevisionInfoAsync(HttpContext context, string typeSegment, string id, string revision)
    {
        if (await ReadableRepoAsync(context, typeSegment, id) is not { } repo)
        {
            return;
        }

        if (repo.Resolve(revision) is not { } commit)
        {
            await ErrorAsync(context, 404, "RevisionNotFound", $"Invalid rev id: {revision}");
            return;
        }

        var siblings = new JsonArray(commit.Files.Keys.Order(StringComparer.Ordinal).Select(p => (JsonNode)new JsonObject { ["rfilename"] = p }).ToArray());
        await JsonAsync(context, new JsonObject
        {
            ["_id"] = repo.StorageKey,
            ["id"] = repo.Id,
            ["private"] = repo.Private,
            ["gated"] = repo.Gated ? "manual" : false,
            ["sha"] = commit.Sha,
            ["siblings"] = siblings,
        });
    }

    private async Task ResolveAsync(HttpContext context, string typeSegment, string id, string revision, string path, string rawPath)
    {
        if (await ReadableRepoAsync(context, typeSegment, id) is not { } repo)
        {
            return;
        }

        if (repo.Gated)
        {
            var token = BearerToken(context);
            if (token is null)
            {
                await ErrorAsync(context, 401, "GatedRepo",
                    $"Access to model {id} is restricted. You must have access to it and be authenticated to access it. Please log in.");
                return;
            }

            if (!repo.AcceptedTokens.Contains(token))
            {
                await ErrorAsync(context, 403, "GatedRepo",
                    $"Access to model {id} is restricted and you are not in the authorized list. Visit {Endpoint}/{id} to ask for access.");
                return;
            }
        }

        if (repo.Resolve(revision) is not { } commit)
        {
            await ErrorAsync(context, 404, "RevisionNotFound", $"Invalid rev id: {revision}");
            return;
        }

        context.Response.Headers["X-Repo-Commit"] = commit.Sha;
        if (!commit.Files.TryGetValue(path, out var file))
        {
            await ErrorAsync(context, 404, "EntryNotFound", $"{path} does not exist on \"{revision}\"");
            return;
        }

        if (file.IsLfs)
        {
            // As the Hub: the resolve answer carries the LFS identity and redirects to storage.
            context.Response.StatusCode = 302;
            context.Response.Headers["X-Linked-Etag"] = $"\"{file.Sha256}\"";
            context.Response.Headers["X-Linked-Size"] = file.Content.Length.ToString(CultureInfo.InvariantCulture);
            context.Response.Headers.ETag = $"\"{file.Sha256}\"";
            context.Response.Headers.Location = $"{StorageBaseUrl ?? Endpoint}/storage/{repo.StorageKey}/{file.Sha256}?X-Amz-Signature=loopback";
            return;
        }

        context.Response.Headers.ETag = $"\"{file.GitOid}\"";
        await WriteBodyAsync(context, file.Content, rawPath);
    }

    private async Task ServeStorageAsync(HttpContext context, string storageKey, string oid, string rawPath)
    {
        var repo = repos.Values.FirstOrDefault(r => r.StorageKey == storageKey);
        if (repo is null || !repo.HasLfsObject(oid, out var content))
        {
            await ErrorAsync(context, 404, null, "NoSuchKey");
            return;
        }

        if (Faults.CorruptLfsBodies)
        {
            content = content.Select(static b => (byte)(b ^ 0x5A)).ToArray();
        }

        context.Response.Headers.ETag = $"\"{oid}\"";
        await WriteBodyAsync(context, content, rawPath);
    }

    /// <summary>Writes <paramref name="content"/> honouring <c>Range: bytes=N-</c> / <c>bytes=N-M</c>, and the drop-connection fault.</summary>
    private async Task WriteBodyAsync(HttpContext context, byte[] content, string rawPath)
    {
        long start = 0, end = content.Length - 1;
        var range = context.Request.Headers.Range.ToString();
        context.Response.Headers.AcceptRanges = "bytes";
        if (range.Length > 0)
        {
            var spec = range.StartsWith("bytes=", StringComparison.Ordinal) ? range["bytes=".Length..].Split('-') : [];
            if (spec.Length != 2 || !long.TryParse(spec[0], CultureInfo.InvariantCulture, out start) || start >= content.Length)
            {
                context.Response.StatusCode = 416;
                context.Response.Headers.ContentRange = $"bytes */{content.Length}";
                return;
            }

            if (spec[1].Length > 0)
            {
                end = Math.Min(end, long.Parse(spec[1], CultureInfo.InvariantCulture));
            }

            context.Response.StatusCode = 206;
            context.Response.Headers.ContentRange = $"bytes {start}-{end}/{content.Length}";
        }

        var length = end - start + 1;
        context.Response.ContentLength = length;
        if (context.Request.Method == "HEAD")
        {
            return;
        }

        if (Faults.Take(LoopbackHubFaults.FaultKind.Drop, "GET", rawPath) is { } drop)
        {
            var sent = (int)Math.Min(drop.AfterBytes, length);
            await context.Response.Body.WriteAsync(content.AsMemory((int)start, sent));
            await context.Response.Body.FlushAsync();
            context.Abort();
            return;
        }

        if (Faults.Take(LoopbackHubFaults.FaultKind.Stall, "GET", rawPath) is { } stall)
        {
            // Headers and the first bytes, then silence (the connection stays open) until the client gives up.
            var sent = (int)Math.Min(stall.AfterBytes, length);
            await context.Response.Body.WriteAsync(content.AsMemory((int)start, sent));
            await context.Response.Body.FlushAsync();
            try
            {
                await Task.Delay(stall.Delay, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            context.Abort();
            return;
        }

        await context.Response.Body.WriteAsync(content.AsMemory((int)start, (int)length));
    }
}
