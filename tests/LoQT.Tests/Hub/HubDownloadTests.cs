using LoQT.Hub;

namespace LoQT.Tests.Hub;

/// <summary>Downloads into the huggingface_hub cache layout, against the loopback Hub.</summary>
public sealed class HubDownloadTests : IAsyncLifetime
{
    private HubTestBed bed = null!;

    public async Task InitializeAsync() => bed = await HubTestBed.StartAsync();

    public async Task DisposeAsync() => await bed.DisposeAsync();

    [Fact]
    public async Task SnapshotDownload_BuildsCacheTree_WithBlobsRelativeSymlinksAndRef()
    {
        using var client = bed.Client();

        var snapshot = await client.DownloadSnapshotAsync(HubTestBed.ModelId);

        var commit = bed.Server.FindRepo(HubTestBed.ModelId)!.Resolve("main")!;
        Assert.Equal(Path.Combine(bed.RepoCache(), "snapshots", commit.Sha), snapshot);
        Assert.Equal(commit.Sha, File.ReadAllText(Path.Combine(bed.RepoCache(), "refs", "main")));
        var expectedEntries = new List<string> { "blobs", "refs", "refs/main", "snapshots", "snapshots/" + commit.Sha };
        foreach (var (path, content) in HubTestBed.ModelFiles())
        {
            var served = commit.Files[path];
            var etag = served.IsLfs ? served.Sha256 : served.GitOid;
            var pointer = Path.Combine([snapshot, .. path.Split('/')]);
            var depth = path.Count(c => c == '/');
            Assert.Equal(string.Concat(Enumerable.Repeat("../", depth + 2)) + "blobs/" + etag, new FileInfo(pointer).LinkTarget);
            Assert.Equal(content, File.ReadAllBytes(pointer));
            expectedEntries.Add("blobs/" + etag);
            expectedEntries.Add($"snapshots/{commit.Sha}/{path}");
        }

        expectedEntries.Add($"snapshots/{commit.Sha}/sub");
        Assert.Equal(expectedEntries.Order(StringComparer.Ordinal), bed.CacheEntries());
    }

    [Fact]
    public async Task SnapshotDownload_FetchesLfsFilesThroughTheStorageRedirect()
    {
        using var client = bed.Client();

        await client.DownloadFileAsync(HubTestBed.ModelId, "model.safetensors");

        var sha = bed.Server.FindRepo(HubTestBed.ModelId)!.Resolve("main")!.Files["model.safetensors"].Sha256;
        Assert.Single(bed.Server.RequestsTo("/resolve/main/model.safetensors", "HEAD"));
        Assert.Empty(bed.Server.RequestsTo("/resolve/main/model.safetensors", "GET"));
        Assert.Single(bed.Server.RequestsTo("/storage/models--org--tiny-model/" + sha, "GET"));
    }

    [Fact]
    public async Task RedirectToAnotherHost_DropsTheToken_SameHostKeepsIt()
    {
        using var client = bed.Client();
        await client.DownloadFileAsync(HubTestBed.ModelId, "model.safetensors");
        bed.Server.StorageBaseUrl = bed.Server.Endpoint.Replace("127.0.0.1", "localhost", StringComparison.Ordinal);
        bed.Server.AddRepo("org/other", new Dictionary<string, byte[]> { ["model.safetensors"] = HubTestBed.Bytes(1000, seed: 9) });

        await client.DownloadFileAsync("org/other", "model.safetensors");

        var storage = bed.Server.RequestsTo("/storage/", "GET");
        Assert.Equal(2, storage.Count);
        Assert.Equal("Bearer " + HubTestBed.Token, storage[0].Authorization);
        Assert.Null(storage[1].Authorization);
    }

    [Fact]
    public async Task SnapshotDownload_SecondRun_TransfersNoFiles()
    {
        using var client = bed.Client();
        var first = await client.DownloadSnapshotAsync(HubTestBed.ModelId);
        var before = bed.Server.Requests.Count;

        var second = await client.DownloadSnapshotAsync(HubTestBed.ModelId);

        Assert.Equal(first, second);
        var after = bed.Server.Requests.Skip(before).ToList();
        Assert.All(after, r => Assert.Contains("/api/models/org/tiny-model/revision/main", r.Path, StringComparison.Ordinal));
    }

    [Fact]
    public async Task SnapshotDownload_ByTag_ServesThatCommitAndRecordsRefForTheTag()
    {
        var repo = bed.Server.FindRepo(HubTestBed.ModelId)!;
        var tagged = repo.Resolve("main")!.Sha;
        repo.Tag("v1.0", tagged);
        repo.Commit("main", new Dictionary<string, LoopbackFile> { ["config.json"] = new("{\"changed\":true}"u8.ToArray(), false) }, "change config");
        using var client = bed.Client();

        var snapshot = await client.DownloadSnapshotAsync(HubTestBed.ModelId, new SnapshotDownloadOptions { Revision = "v1.0", Include = ["config.json"] });

        Assert.EndsWith(tagged, snapshot, StringComparison.Ordinal);
        Assert.Equal(tagged, File.ReadAllText(Path.Combine(bed.RepoCache(), "refs", "v1.0")));
        Assert.Equal(HubTestBed.ModelFiles()["config.json"], File.ReadAllBytes(Path.Combine(snapshot, "config.json")));
    }

    [Fact]
    public async Task SnapshotDownload_ByBranch_ServesTheBranchHeadAndRecordsItsRef()
    {
        var dev = bed.Server.FindRepo(HubTestBed.ModelId)!.Commit(
            "dev", new Dictionary<string, LoopbackFile> { ["config.json"] = new("{\"branch\":\"dev\"}"u8.ToArray(), false) }, "dev config");
        using var client = bed.Client();

        var snapshot = await client.DownloadSnapshotAsync(HubTestBed.ModelId, new SnapshotDownloadOptions { Revision = "dev" });

        Assert.Equal(Path.Combine(bed.RepoCache(), "snapshots", dev.Sha), snapshot);
        Assert.Equal(dev.Sha, File.ReadAllText(Path.Combine(bed.RepoCache(), "refs", "dev")));
        Assert.Equal("{\"branch\":\"dev\"}", File.ReadAllText(Path.Combine(snapshot, "config.json")));
        Assert.False(File.Exists(Path.Combine(bed.RepoCache(), "refs", "main")));
    }

    [Fact]
    public async Task SnapshotDownload_ByCommitSha_WritesNoRef()
    {
        var sha = bed.Server.FindRepo(HubTestBed.ModelId)!.Resolve("main")!.Sha;
        using var client = bed.Client();

        var snapshot = await client.DownloadSnapshotAsync(HubTestBed.ModelId, new SnapshotDownloadOptions { Revision = sha, Include = ["config.json"] });

        Assert.EndsWith(sha, snapshot, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(bed.RepoCache(), "refs")));
    }

    [Fact]
    public async Task SnapshotDownload_IncludeAndExcludeGlobs_SelectFiles()
    {
        using var client = bed.Client();

        var snapshot = await client.DownloadSnapshotAsync(
            HubTestBed.ModelId,
            new SnapshotDownloadOptions { Include = ["*.json", "sub/"], Exclude = ["tokenizer*"] });

        var files = Directory.EnumerateFiles(snapshot, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(snapshot, f).Replace('\\', '/')).Order(StringComparer.Ordinal);
        Assert.Equal(["config.json", "sub/notes.txt"], files);
    }

    [Fact]
    public async Task SnapshotDownload_LocalDir_GetsRegularFileCopiesAndIsReturned()
    {
        using var client = bed.Client();
        var localDir = Path.Combine(bed.Root, "local");

        var result = await client.DownloadSnapshotAsync(HubTestBed.ModelId, new SnapshotDownloadOptions { LocalDir = localDir });

        Assert.Equal(localDir, result);
        foreach (var (path, content) in HubTestBed.ModelFiles())
        {
            var copy = new FileInfo(Path.Combine([localDir, .. path.Split('/')]));
            Assert.Null(copy.LinkTarget);
            Assert.Equal(content, File.ReadAllBytes(copy.FullName));
        }
    }

    [Fact]
    public async Task SnapshotDownload_RunsUpToMaxParallelDownloadsAtOnce()
    {
        var lfsFiles = Enumerable.Range(0, 4).ToDictionary(i => $"model-{i}.safetensors", i => HubTestBed.Bytes(1000, seed: 10 + i));
        bed.Server.AddRepo("org/serial", lfsFiles);
        bed.Server.AddRepo("org/parallel", lfsFiles);
        // Each storage response waits, so downloads that run in parallel overlap on the server.
        bed.Server.Faults.DelayNext(TimeSpan.FromMilliseconds(150), times: 8, pathContains: "/storage/");

        using (var serial = bed.Client(o => o with { MaxParallelDownloads = 1 }))
        {
            await serial.DownloadSnapshotAsync("org/serial");
        }

        Assert.Equal(1, bed.Server.MaxConcurrentStorageDownloads);
        using (var parallel = bed.Client(o => o with { MaxParallelDownloads = 4 }))
        {
            await parallel.DownloadSnapshotAsync("org/parallel");
        }

        Assert.True(bed.Server.MaxConcurrentStorageDownloads > 1, $"max concurrent storage downloads {bed.Server.MaxConcurrentStorageDownloads}");
    }

    [Fact]
    public async Task ConcurrentDownloadsOfTheSameFile_ShareOneBlobThroughTheLock()
    {
        bed.Server.Faults.DelayNext(TimeSpan.FromMilliseconds(300), times: 1, pathContains: "/storage/");
        using var first = bed.Client();
        using var second = bed.Client();

        var paths = await Task.WhenAll(
            first.DownloadFileAsync(HubTestBed.ModelId, "model.safetensors"),
            second.DownloadFileAsync(HubTestBed.ModelId, "model.safetensors"));

        Assert.Equal(paths[0], paths[1]);
        Assert.Equal(HubTestBed.ModelFiles()["model.safetensors"], File.ReadAllBytes(paths[0]));
        Assert.Single(bed.Server.RequestsTo("/storage/", "GET"));
        Assert.DoesNotContain(bed.CacheEntries(), e => e.EndsWith(".incomplete", StringComparison.Ordinal));
    }

    [Fact]
    public async Task BlobLockHeldByAnotherProcess_MakesTheDownloadWaitForIt()
    {
        // flock(1) takes the advisory lock Python's filelock takes, from another process: the download must wait for it.
        var sha = bed.Server.FindRepo(HubTestBed.ModelId)!.Resolve("main")!.Files["model.safetensors"].Sha256;
        var lockPath = Path.Combine(bed.CacheDir, ".locks", "models--org--tiny-model", sha + ".lock");
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        var start = new System.Diagnostics.ProcessStartInfo("flock") { RedirectStandardOutput = true };
        foreach (var argument in new[] { lockPath, "-c", "echo held; sleep 1.5" })
        {
            start.ArgumentList.Add(argument);
        }

        using var holder = System.Diagnostics.Process.Start(start)!;
        Assert.Equal("held", await holder.StandardOutput.ReadLineAsync());
        var held = System.Diagnostics.Stopwatch.StartNew();
        using var client = bed.Client();

        var path = await client.DownloadFileAsync(HubTestBed.ModelId, "model.safetensors");

        // The other process holds the lock for 1.5 s after saying so; 1.2 s leaves room for its start-up.
        Assert.True(held.Elapsed >= TimeSpan.FromSeconds(1.2), $"the download finished {held.Elapsed.TotalSeconds:0.00} s into the other process's 1.5 s lock");
        Assert.Equal(HubTestBed.ModelFiles()["model.safetensors"], File.ReadAllBytes(path));
        Assert.Contains(bed.Log, line => line.Contains("waiting for another download", StringComparison.Ordinal));
        await holder.WaitForExitAsync();
    }

    [Fact]
    public async Task DatasetRepo_IsCachedUnderItsDatasetsFolder()
    {
        bed.Server.AddRepo("org/corpus", new Dictionary<string, byte[]> { ["train.jsonl"] = "{\"text\":\"hi\"}\n"u8.ToArray() }, "datasets");
        using var client = bed.Client();

        var snapshot = await client.DownloadSnapshotAsync("org/corpus", new SnapshotDownloadOptions { RepoType = HubRepoType.Dataset });

        Assert.StartsWith(Path.Combine(bed.CacheDir, "datasets--org--corpus", "snapshots"), snapshot, StringComparison.Ordinal);
        Assert.Equal("{\"text\":\"hi\"}\n", File.ReadAllText(Path.Combine(snapshot, "train.jsonl")));
    }

    [Fact]
    public async Task Progress_ReportsStartBytesAndCompletionPerFile()
    {
        var reports = new List<DownloadProgress>();
        using var client = bed.Client();

        await client.DownloadFileAsync(HubTestBed.ModelId, "model.safetensors", progress: new SynchronousProgress<DownloadProgress>(reports.Add));

        Assert.Equal(DownloadStatus.Started, reports[0].Status);
        Assert.Equal(DownloadStatus.Completed, reports[^1].Status);
        Assert.Equal(300_000, reports[^1].BytesDownloaded);
        Assert.Contains(reports, r => r.Status == DownloadStatus.Downloading && r.BytesDownloaded < 300_000);
    }
}

/// <summary>An <see cref="IProgress{T}"/> that calls back on the reporting thread (unlike <see cref="Progress{T}"/>).</summary>
internal sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    private readonly Lock gate = new();

    public void Report(T value)
    {
        lock (gate)
        {
            report(value);
        }
    }
}
