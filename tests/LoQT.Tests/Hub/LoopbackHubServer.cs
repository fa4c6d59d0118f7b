using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;

namespace LoQT.Tests.Hub;

/// <summary>
/// A Hugging Face Hub-compatible HTTP server on 127.0.0.1 (Kestrel, random port) serving in-memory repositories:
/// the revision API, <c>resolve</c> downloads (regular files directly, LFS files by 302 to a storage URL on the same
/// server, with Range support), repo creation, preupload, the LFS batch API (basic and multipart), verify, and ndjson
/// commits. <see cref="Faults"/> switches on failures; <see cref="Requests"/> records what clients sent.
/// </summary>
internal sealed partial class LoopbackHubServer : IAsyncDisposable
{
    private const long LfsSizeThreshold = 10 * 1024 * 1024;

    private readonly WebApplication app;
    private readonly ConcurrentDictionary<string, LoopbackHubRepository> repos = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<RecordedRequest> requests = new();
    private readonly Stopwatch clock = Stopwatch.StartNew();
    private int inFlightStorage;
    private int maxInFlightStorage;

    private LoopbackHubServer(WebApplication app)
    {
        this.app = app;
    }

    /// <summary>Base URL, e.g. <c>http://127.0.0.1:41234</c> (what <c>HF_ENDPOINT</c> would be).</summary>
    public string Endpoint { get; private set; } = string.Empty;

    public LoopbackHubFaults Faults { get; } = new();

    /// <summary>Tokens the server accepts; a request with any other bearer token gets 401.</summary>
    public HashSet<string> ValidTokens { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Base URL of LFS storage in download redirects; defaults to <see cref="Endpoint"/>. Tests point it at
    /// <c>http://localhost:port</c> (the same server under another host name) to act as a third-party CDN.
    /// </summary>
    public string? StorageBaseUrl { get; set; }

    /// <summary>LFS objects at least this large are offered a multipart upload.</summary>
    public long MultipartThreshold { get; set; } = long.MaxValue;

    /// <summary>Part size of multipart uploads.</summary>
    public int MultipartChunkSize { get; set; } = 5 * 1024 * 1024;

    /// <summary>Every request received, in order of arrival.</summary>
    public IReadOnlyList<RecordedRequest> Requests => requests.ToArray();

    /// <summary>Most storage downloads served at the same time.</summary>
    public int MaxConcurrentStorageDownloads => Volatile.Read(ref maxInFlightStorage);

    public static async Task<LoopbackHubServer> StartAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(options =>
        {
            options.Listen(IPAddress.Loopback, 0);
            options.Limits.MaxRequestBodySize = null;
        });
        var app = builder.Build();
        var server = new LoopbackHubServer(app);
        app.Run(server.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        server.Endpoint = address.TrimEnd('/');
        return server;
    }

    /// <summary>Creates a model repository whose <c>main</c> holds <paramref name="files"/> (LFS by extension); returns it.</summary>
    public LoopbackHubRepository AddRepo(string id, IReadOnlyDictionary<string, byte[]> files, string typeSegment = "models")
    {
        var repo = new LoopbackHubRepository(id, typeSegment);
        if (!repos.TryAdd(Key(typeSegment, id), repo))
        {
            throw new InvalidOperationException($"repo {id} exists");
        }

        repo.Commit("main", files.ToDictionary(kv => kv.Key, kv => LoopbackFile.For(kv.Key, kv.Value)), "initial commit");
        return repo;
    }

    public LoopbackHubRepository? FindRepo(string id, string typeSegment = "models") => repos.GetValueOrDefault(Key(typeSegment, id));

    public IReadOnlyList<RecordedRequest> RequestsTo(string pathContains, string? method = null) =>
        Requests.Where(r => r.Path.Contains(pathContains, StringComparison.Ordinal) && (method is null || r.Method == method)).ToList();

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }

    private static string Key(string typeSegment, string id) => typeSegment + "/" + id;

    private async Task HandleAsync(HttpContext context)
    {
        var raw = context.Features.GetRequiredFeature<IHttpRequestFeature>().RawTarget;
        var queryStart = raw.IndexOf('?', StringComparison.Ordinal);
        var path = queryStart < 0 ? raw : raw[..queryStart];
        var method = context.Request.Method;
        var auth = context.Request.Headers.Authorization.ToString();
        var record = new RecordedRequest(
            method, path, context.Request.Headers.Range.ToString(), auth.Length == 0 ? null : auth, clock.Elapsed);
        requests.Enqueue(record);
        var isStorage = path.StartsWith("/storage/", StringComparison.Ordinal);
        if (isStorage)
        {
            var now = Interlocked.Increment(ref inFlightStorage);
            int seen;
            while (now > (seen = Volatile.Read(ref maxInFlightStorage)) && Interlocked.CompareExchange(ref maxInFlightStorage, now, seen) != seen)
            {
            }
        }

        try
        {
            await HandleRecordedAsync(context, method, path, auth);
        }
        finally
        {
            if (isStorage)
            {
                Interlocked.Decrement(ref inFlightStorage);
            }
        }
    }

    private async Task HandleRecordedAsync(HttpContext context, string method, string path, string auth)
    {

        if (Faults.Take(LoopbackHubFaults.FaultKind.Delay, method, path) is { } delay)
        {
            await Task.Delay(delay.Delay, context.RequestAborted);
        }

        if (Faults.Take(LoopbackHubFaults.FaultKind.Status, method, path) is { } failure)
        {
            if (failure.RetryAfterSeconds is { } seconds)
            {
                context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            await ErrorAsync(context, failure.Status, null, "injected failure");
            return;
        }

        if (auth.Length > 0 && (!auth.StartsWith("Bearer ", StringComparison.Ordinal) || !ValidTokens.Contains(auth["Bearer ".Length..])))
        {
            context.Response.Headers["X-Error-Message"] = "Invalid credentials in Authorization header";
            await ErrorAsync(context, 401, null, "Invalid credentials in Authorization header");
            return;
        }

        try
        {
            await RouteAsync(context, method, path.Split('/', StringSplitOptions.RemoveEmptyEntries).Select(Uri.UnescapeDataString).ToArray(), path);
        }
        catch (BadRequestException bad)
        {
            await ErrorAsync(context, 400, null, bad.Message);
        }
    }

    private Task RouteAsync(HttpContext context, string method, string[] segments, string rawPath)
    {
        if (segments is ["api", "repos", "create"] && method == "POST")
        {
            return CreateRepoAsync(context);
        }

        if (segments.Length >= 3 && segments[0] == "api" && segments[1] is "models" or "datasets" or "spaces")
        {
            return RouteApiAsync(context, method, segments[1], rawPath, segments[2..]);
        }

        if (segments.Length >= 3 && segments[0] == "storage" && method == "GET")
        {
            return ServeStorageAsync(context, segments[1], segments[2], rawPath);
        }

        if (segments.Length >= 3 && segments[0] == "storage-upload")
        {
            return StorageUploadAsync(context, method, segments[1], segments[2], segments[3..]);
        }

        var typeSegment = "models";
        var rest = segments;
        if (segments.Length > 0 && segments[0] is "datasets" or "spaces")
        {
            typeSegment = segments[0];
            rest = segments[1..];
        }

        for (var repoParts = 2; repoParts >= 1; repoParts--)
        {
            if (rest.Length > repoParts && rest[repoParts] == "resolve" && rest.Length >= repoParts + 3 && method is "GET" or "HEAD")
            {
                var id = string.Join('/', rest[..repoParts]);
                var revision = rest[repoParts + 1];
                var file = string.Join('/', rest[(repoParts + 2)..]);
                return ResolveAsync(context, typeSegment, id, revision, file, rawPath);
            }

            if (rest.Length == repoParts + 4 && rest[repoParts - 1].EndsWith(".git", StringComparison.Ordinal) &&
                rest[repoParts..] is ["info", "lfs", "objects", var action] && method == "POST")
            {
                var id = string.Join('/', rest[..repoParts])[..^4];
                return action == "batch" ? LfsBatchAsync(context, typeSegment, id) : LfsVerifyAsync(context, typeSegment, id);
            }
        }

        return ErrorAsync(context, 404, null, "no such endpoint: " + method + " " + rawPath);
    }

    private Task RouteApiAsync(HttpContext context, string method, string typeSegment, string rawPath, string[] rest)
    {
        for (var repoParts = 2; repoParts >= 1; repoParts--)
        {
            if (rest.Length == repoParts + 2 && rest[repoParts] is "revision" or "preupload" or "commit")
            {
                var id = string.Join('/', rest[..repoParts]);
                var revision = rest[repoParts + 1];
                return (rest[repoParts], method) switch
                {
                    ("revision", "GET") => RevisionInfoAsync(context, typeSegment, id, revision),
                    ("preupload", "POST") => PreuploadAsync(context, typeSegment, id, revision),
                    ("commit", "POST") => CommitAsync(context, typeSegment, id, revision),
                    _ => ErrorAsync(context, 405, null, "method not allowed"),
                };
            }
        }

        if (rest.Length is 1 or 2 && method == "GET")
        {
            return RevisionInfoAsync(context, typeSegment, string.Join('/', rest), "main");
        }

        return ErrorAsync(context, 404, null, "no such endpoint: " + method + " " + rawPath);
    }

    private string? BearerToken(HttpContext context)
    {
        var auth = context.Request.Headers.Authorization.ToString();
        return auth.StartsWith("Bearer ", StringComparison.Ordinal) ? auth["Bearer ".Length..] : null;
    }

    /// <summary>Finds a repository the caller may read; otherwise writes the Hub's error (RepoNotFound 404 / 401) and returns null.</summary>
    private async Task<LoopbackHubRepository?> ReadableRepoAsync(HttpContext context, string typeSegment, string id)
    {
        var repo = FindRepo(id, typeSegment);
        if (repo is null)
        {
            await ErrorAsync(context, 404, "RepoNotFound", "Repository not found");
            return null;
        }

        if (repo.Private && BearerToken(context) is null)
        {
            // The Hub answers 401 for private repositories without a token, indistinguishable from a missing one.
            await ErrorAsync(context, 401, "RepoNotFound", "Repository not found");
            return null;
        }

        return repo;
    }

    private async Task ErrorAsync(HttpContext context, int status, string? errorCode, string message)
    {
        if (Faults.EchoAuthorizationInErrors)
        {
            // A careless (or hostile) server quoting the request's credentials back.
            message += " (request had Authorization: " + context.Request.Headers.Authorization + ")";
        }

        context.Response.StatusCode = status;
        if (errorCode is not null)
        {
            context.Response.Headers["X-Error-Code"] = errorCode;
        }

        if (!context.Response.Headers.ContainsKey("X-Error-Message"))
        {
            context.Response.Headers["X-Error-Message"] = message;
        }

        if (context.Request.Method != "HEAD")
        {
            await context.Response.WriteAsJsonAsync(new { error = message });
        }
    }

    private static Task JsonAsync(HttpContext context, JsonNode body, int status = 200)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(body.ToJsonString());
    }

    private static async Task<JsonObject> ReadJsonAsync(HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var text = await reader.ReadToEndAsync();
        try
        {
            return JsonNode.Parse(text) as JsonObject ?? throw new BadRequestException("body is not a JSON object");
        }
        catch (JsonException error)
        {
            throw new BadRequestException("body is not JSON: " + error.Message);
        }
    }

    private static async Task<byte[]> ReadBodyAsync(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    /// <summary>One request as the server saw it.</summary>
    internal sealed record RecordedRequest(string Method, string Path, string Range, string? Authorization, TimeSpan At);

    private sealed class BadRequestException(string message) : Exception(message);
}
