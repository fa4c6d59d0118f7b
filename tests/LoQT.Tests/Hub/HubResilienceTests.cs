using System.Net;
using System.Text.RegularExpressions;
using LoQT.Hub;

namespace LoQT.Tests.Hub;

/// <summary>Retries, resume and integrity checks against a misbehaving loopback Hub.</summary>
public sealed partial class HubResilienceTests : IAsyncLifetime
{
    private const string LfsFile = "model.safetensors";
    private HubTestBed bed = null!;

    public async Task InitializeAsync() => bed = await HubTestBed.StartAsync();

    public async Task DisposeAsync() => await bed.DisposeAsync();

    private byte[] LfsContent => HubTestBed.ModelFiles()[LfsFile];

    [Fact]
    public async Task DroppedConnectionMidFile_IsResumedWithRange_AndGivesIdenticalBytes()
    {
        bed.Server.Faults.DropConnectionNext(afterBytes: 100_000, pathContains: "/storage/");
        using var client = bed.Client();

        var path = await client.DownloadFileAsync(HubTestBed.ModelId, LfsFile);

        Assert.Equal(LfsContent, File.ReadAllBytes(path));
        var storage = bed.Server.RequestsTo("/storage/", "GET");
        Assert.Equal(2, storage.Count);
        Assert.Equal(string.Empty, storage[0].Range);
        var resumedAt = ResumeOffset(storage[1].Range);
        Assert.InRange(resumedAt, 1, 100_000);
    }

    [Fact]
    public async Task InterruptedRun_LeavesIncompleteFile_ThatTheNextRunResumes()
    {
        bed.Server.Faults.DropConnectionNext(afterBytes: 100_000, pathContains: "/storage/");
        using (var noRetries = bed.Client(o => o with { MaxRetries = 0 }))
        {
            await Assert.ThrowsAsync<HubRequestFailedException>(() => noRetries.DownloadFileAsync(HubTestBed.ModelId, LfsFile));
        }

        var sha = bed.Server.FindRepo(HubTestBed.ModelId)!.Resolve("main")!.Files[LfsFile].Sha256;
        var incomplete = Path.Combine(bed.RepoCache(), "blobs", sha + ".incomplete");
        var partial = new FileInfo(incomplete).Length;
        Assert.InRange(partial, 1, 100_000);
        Assert.False(File.Exists(Path.Combine(bed.RepoCache(), "blobs", sha)));

        using var client = bed.Client();
        var path = await client.DownloadFileAsync(HubTestBed.ModelId, LfsFile);

        Assert.Equal(LfsContent, File.ReadAllBytes(path));
        Assert.Equal($"bytes={partial}-", bed.Server.RequestsTo("/storage/", "GET")[^1].Range);
        Assert.False(File.Exists(incomplete));
    }

    [Fact]
    public async Task InterruptedSnapshot_ResumedByTheNextRun_GivesTheSameFilesAndCacheTreeAsAFullDownload()
    {
        var fullCache = Path.Combine(bed.Root, "full");
        var resumedCache = Path.Combine(bed.Root, "resumed");
        using (var full = bed.Client(o => o with { CacheDir = fullCache }))
        {
            await full.DownloadSnapshotAsync(HubTestBed.ModelId);
        }

        bed.Server.Faults.DropConnectionNext(afterBytes: 120_000, pathContains: "/storage/");
        using (var interrupted = bed.Client(o => o with { CacheDir = resumedCache, MaxRetries = 0, MaxParallelDownloads = 1 }))
        {
            await Assert.ThrowsAsync<HubRequestFailedException>(() => interrupted.DownloadSnapshotAsync(HubTestBed.ModelId));
        }

        Assert.Contains(Tree(resumedCache), e => e.Path.EndsWith(".incomplete", StringComparison.Ordinal));
        using (var resumed = bed.Client(o => o with { CacheDir = resumedCache }))
        {
            await resumed.DownloadSnapshotAsync(HubTestBed.ModelId);
        }

        // Same entries, same relative symlink targets, same bytes; the .incomplete file became the blob.
        Assert.Equal(Tree(fullCache), Tree(resumedCache));
        Assert.Matches(@"^bytes=\d+-$", bed.Server.RequestsTo("/storage/", "GET")[^1].Range);
    }

    [Fact]
    public async Task ServerErrors_AreRetried_UntilTheDownloadSucceeds()
    {
        bed.Server.Faults.FailNext(500, times: 2, pathContains: "/resolve/main/config.json");
        using var client = bed.Client();

        var path = await client.DownloadFileAsync(HubTestBed.ModelId, "config.json");

        Assert.Equal(HubTestBed.ModelFiles()["config.json"], File.ReadAllBytes(path));
        Assert.Equal(3, bed.Server.RequestsTo("/resolve/main/config.json", "HEAD").Count);
        Assert.Contains(bed.Log, line => line.Contains("500", StringComparison.Ordinal) && line.Contains("retry 1/3", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TooManyRequests_WaitsForRetryAfter_BeforeRetrying()
    {
        bed.Server.Faults.FailNext(429, times: 1, pathContains: "/resolve/main/config.json", retryAfterSeconds: 1);
        using var client = bed.Client();

        await client.DownloadFileAsync(HubTestBed.ModelId, "config.json");

        var heads = bed.Server.RequestsTo("/resolve/main/config.json", "HEAD");
        Assert.Equal(2, heads.Count);
        // Retry-After is 1 s; the 50 ms slack covers timer granularity (the backoff alone would be about 1 ms).
        Assert.True(heads[1].At - heads[0].At >= TimeSpan.FromMilliseconds(950), $"retried after {(heads[1].At - heads[0].At).TotalMilliseconds} ms");
    }

    [Fact]
    public async Task SlowResponse_TimesOut_AndIsRetried()
    {
        bed.Server.Faults.DelayNext(TimeSpan.FromSeconds(3), times: 1, pathContains: "/resolve/main/config.json");
        using var client = bed.Client(o => o with { RequestTimeout = TimeSpan.FromMilliseconds(300) });

        var path = await client.DownloadFileAsync(HubTestBed.ModelId, "config.json");

        Assert.Equal(HubTestBed.ModelFiles()["config.json"], File.ReadAllBytes(path));
        Assert.Equal(2, bed.Server.RequestsTo("/resolve/main/config.json", "HEAD").Count);
        Assert.Contains(bed.Log, line => line.Contains(nameof(TimeoutException), StringComparison.Ordinal));
    }

    [Fact]
    public async Task BodyThatStopsComing_TimesOut_AndTheRetryResumesWhereItStopped()
    {
        bed.Server.Faults.StallBodyNext(afterBytes: 80_000, silence: TimeSpan.FromSeconds(10), pathContains: "/storage/");
        using var client = bed.Client(o => o with { ReadTimeout = TimeSpan.FromMilliseconds(400) });

        var path = await client.DownloadFileAsync(HubTestBed.ModelId, LfsFile);

        Assert.Equal(LfsContent, File.ReadAllBytes(path));
        var storage = bed.Server.RequestsTo("/storage/", "GET");
        Assert.Equal(2, storage.Count);
        Assert.InRange(ResumeOffset(storage[1].Range), 1, 80_000);
        Assert.Contains(bed.Log, line => line.Contains("No data from", StringComparison.Ordinal));
    }

    [Fact]
    public async Task PersistentServerErrors_FailAfterTheConfiguredAttempts()
    {
        bed.Server.Faults.FailNext(503, times: 100, pathContains: "/resolve/");
        using var client = bed.Client(o => o with { MaxRetries = 2 });

        var error = await Assert.ThrowsAsync<HubRequestFailedException>(() => client.DownloadFileAsync(HubTestBed.ModelId, "config.json"));

        Assert.Equal(3, error.Attempts);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, error.StatusCode);
        Assert.Contains("503", error.Message, StringComparison.Ordinal);
        Assert.Equal(3, bed.Server.RequestsTo("/resolve/").Count);
    }

    [Fact]
    public async Task ShaMismatch_IsRejected_AndLeavesNothingInBlobsOrSnapshots()
    {
        bed.Server.Faults.CorruptLfsBodies = true;
        using var client = bed.Client();

        var error = await Assert.ThrowsAsync<HubIntegrityException>(() => client.DownloadFileAsync(HubTestBed.ModelId, LfsFile));

        Assert.Contains("sha256", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(bed.CacheEntries(), e => e.StartsWith("blobs/", StringComparison.Ordinal) || e.StartsWith("snapshots/", StringComparison.Ordinal));
        Assert.Single(bed.Server.RequestsTo("/storage/", "GET"));
    }

    [Fact]
    public async Task ShaMismatch_DoesNotPoisonTheNextDownload()
    {
        bed.Server.Faults.CorruptLfsBodies = true;
        using var client = bed.Client();
        await Assert.ThrowsAsync<HubIntegrityException>(() => client.DownloadFileAsync(HubTestBed.ModelId, LfsFile));
        bed.Server.Faults.CorruptLfsBodies = false;

        var path = await client.DownloadFileAsync(HubTestBed.ModelId, LfsFile);

        Assert.Equal(LfsContent, File.ReadAllBytes(path));
        Assert.Equal(string.Empty, bed.Server.RequestsTo("/storage/", "GET")[^1].Range);
    }

    [Fact]
    public async Task HubUnreachable_FallsBackToTheCachedSnapshot()
    {
        using var client = bed.Client(o => o with { MaxRetries = 1 });
        var cached = await client.DownloadSnapshotAsync(HubTestBed.ModelId);
        bed.Server.Faults.FailNext(503, times: 100, pathContains: "/api/");

        var snapshot = await client.DownloadSnapshotAsync(HubTestBed.ModelId);

        Assert.Equal(cached, snapshot);
        Assert.Contains(bed.Log, line => line.Contains("Using the cached snapshot", StringComparison.Ordinal));
    }

    /// <summary>Every entry under a cache root except lock files: path, symlink target, and a hash of a regular file's bytes.</summary>
    private static List<(string Path, string? Link, string? Sha256)> Tree(string cacheRoot) =>
        Directory.EnumerateFileSystemEntries(cacheRoot, "*", SearchOption.AllDirectories)
            .Select(p => (Full: p, Relative: Path.GetRelativePath(cacheRoot, p).Replace('\\', '/')))
            .Where(e => !e.Relative.StartsWith(".locks", StringComparison.Ordinal))
            .Select(e =>
            {
                var info = new FileInfo(e.Full);
                var isFile = File.Exists(e.Full) && info.LinkTarget is null;
                return (e.Relative, info.LinkTarget, isFile ? Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(e.Full))) : null);
            })
            .OrderBy(e => e.Relative, StringComparer.Ordinal)
            .ToList();

    private static long ResumeOffset(string range)
    {
        var match = RangeHeader().Match(range);
        Assert.True(match.Success, $"expected 'bytes=N-', got '{range}'");
        return long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"^bytes=(\d+)-$")]
    private static partial Regex RangeHeader();
}
