using System.Net;
using LoQT.Hub;

namespace LoQT.Tests.Hub;

/// <summary>Client errors (gated, not found) and offline mode: clear messages, no retries.</summary>
public sealed class HubErrorTests : IAsyncLifetime
{
    private const string GatedId = "meta/gated-model";
    private HubTestBed bed = null!;

    public async Task InitializeAsync()
    {
        bed = await HubTestBed.StartAsync();
        var gated = bed.Server.AddRepo(GatedId, new Dictionary<string, byte[]> { ["config.json"] = "{}"u8.ToArray() });
        gated.Gated = true;
    }

    public async Task DisposeAsync() => await bed.DisposeAsync();

    [Fact]
    public async Task GatedRepo_WithoutToken_SaysToAcceptTheLicenseAndPassAToken_WithoutRetrying()
    {
        using var client = bed.Client(token: null);

        var error = await Assert.ThrowsAsync<GatedRepoException>(() => client.DownloadSnapshotAsync(GatedId));

        Assert.Equal(HttpStatusCode.Unauthorized, error.StatusCode);
        Assert.Contains("accept its license", error.Message, StringComparison.Ordinal);
        Assert.Contains("HF_TOKEN", error.Message, StringComparison.Ordinal);
        Assert.Contains($"{bed.Server.Endpoint}/{GatedId}", error.Message, StringComparison.Ordinal);
        Assert.Single(bed.Server.RequestsTo("/resolve/"));
    }

    [Fact]
    public async Task GatedRepo_TokenWithoutAccess_SaysTheTokensAccountMustAcceptTheLicense()
    {
        using var client = bed.Client();

        var error = await Assert.ThrowsAsync<GatedRepoException>(() => client.DownloadFileAsync(GatedId, "config.json"));

        Assert.Equal(HttpStatusCode.Forbidden, error.StatusCode);
        Assert.Contains("token you passed has no access", error.Message, StringComparison.Ordinal);
        Assert.Single(bed.Server.RequestsTo("/resolve/"));
    }

    [Fact]
    public async Task GatedRepo_AcceptedToken_Downloads()
    {
        bed.Server.FindRepo(GatedId)!.AcceptedTokens.Add(HubTestBed.Token);
        using var client = bed.Client();

        var path = await client.DownloadFileAsync(GatedId, "config.json");

        Assert.Equal("{}", File.ReadAllText(path));
    }

    [Fact]
    public async Task UnknownRepo_SaysRepositoryNotFound()
    {
        using var client = bed.Client();

        var error = await Assert.ThrowsAsync<RepositoryNotFoundException>(() => client.DownloadSnapshotAsync("org/no-such-model"));

        Assert.Contains("Repository 'org/no-such-model' not found", error.Message, StringComparison.Ordinal);
        Assert.Single(bed.Server.Requests);
    }

    [Fact]
    public async Task UnknownRevision_SaysRevisionNotFound()
    {
        using var client = bed.Client();

        var error = await Assert.ThrowsAsync<RevisionNotFoundException>(
            () => client.DownloadSnapshotAsync(HubTestBed.ModelId, new SnapshotDownloadOptions { Revision = "no-such-branch" }));

        Assert.Contains("Revision 'no-such-branch' not found in repository 'org/tiny-model'", error.Message, StringComparison.Ordinal);
        Assert.Single(bed.Server.Requests);
    }

    [Fact]
    public async Task UnknownFile_SaysFileNotFound()
    {
        using var client = bed.Client();

        var error = await Assert.ThrowsAsync<HubFileNotFoundException>(() => client.DownloadFileAsync(HubTestBed.ModelId, "weights/missing.safetensors"));

        Assert.Contains("File 'weights/missing.safetensors' not found in repository 'org/tiny-model' at revision 'main'", error.Message, StringComparison.Ordinal);
        Assert.Single(bed.Server.Requests);
    }

    [Fact]
    public async Task PrivateRepo_WithoutToken_IsReportedAsNotFoundWithTokenAdvice()
    {
        bed.Server.FindRepo(HubTestBed.ModelId)!.Private = true;
        using var client = bed.Client(token: null);

        var error = await Assert.ThrowsAsync<RepositoryNotFoundException>(() => client.DownloadSnapshotAsync(HubTestBed.ModelId));

        Assert.Contains("pass a token", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InvalidToken_IsReportedAsRejected_WithoutRetrying()
    {
        using var client = bed.Client(token: "hf_not_a_valid_token");

        var error = await Assert.ThrowsAsync<HubAuthenticationException>(() => client.DownloadSnapshotAsync(HubTestBed.ModelId));

        Assert.Contains("rejected the token", error.Message, StringComparison.Ordinal);
        Assert.Single(bed.Server.Requests);
    }

    [Fact]
    public async Task Offline_ServesTheCachedSnapshot_WithoutContactingTheHub()
    {
        string online;
        using (var client = bed.Client())
        {
            online = await client.DownloadSnapshotAsync(HubTestBed.ModelId);
        }

        var requestsBefore = bed.Server.Requests.Count;
        using var offline = bed.Client(o => o with { Offline = true });

        var snapshot = await offline.DownloadSnapshotAsync(HubTestBed.ModelId);
        var file = await offline.DownloadFileAsync(HubTestBed.ModelId, "config.json");

        Assert.Equal(online, snapshot);
        Assert.Equal(Path.Combine(online, "config.json"), file);
        Assert.Equal(requestsBefore, bed.Server.Requests.Count);
    }

    [Fact]
    public async Task Offline_ACacheLaidOutByPythonsHuggingfaceHub_IsUsed()
    {
        // What huggingface_hub's snapshot_download leaves: blobs named by ETag (git sha1 for regular files, sha256 for
        // LFS), snapshots/<commit>/<path> as relative links, refs/main without a newline, and its .no_exist / .locks.
        var commit = "3f1c2a9e8b7d6c5f4e3d2c1b0a9f8e7d6c5b4a39";
        var repo = bed.RepoCache();
        var files = new Dictionary<string, (string Etag, byte[] Content)>
        {
            ["config.json"] = ("0a1b2c3d4e5f60718293a4b5c6d7e8f901234567", "{\"model_type\":\"llama\"}"u8.ToArray()),
            ["model.safetensors"] = ("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", HubTestBed.Bytes(1000, seed: 4)),
        };
        foreach (var (path, (etag, content)) in files)
        {
            Directory.CreateDirectory(Path.Combine(repo, "blobs"));
            File.WriteAllBytes(Path.Combine(repo, "blobs", etag), content);
            Directory.CreateDirectory(Path.Combine(repo, "snapshots", commit));
            File.CreateSymbolicLink(Path.Combine(repo, "snapshots", commit, path), "../../blobs/" + etag);
        }

        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), commit);
        Directory.CreateDirectory(Path.Combine(repo, ".no_exist", commit));
        File.WriteAllBytes(Path.Combine(repo, ".no_exist", commit, "generation_config.json"), []);
        Directory.CreateDirectory(Path.Combine(bed.CacheDir, ".locks", "models--org--tiny-model"));
        using var offline = bed.Client(o => o with { Offline = true });

        var snapshot = await offline.DownloadSnapshotAsync(HubTestBed.ModelId);
        var model = await offline.ResolveModelAsync(HubTestBed.ModelId);
        var weights = await offline.DownloadFileAsync(HubTestBed.ModelId, "model.safetensors");
        var pinned = await offline.DownloadFileAsync(HubTestBed.ModelId, "config.json", revision: commit);

        Assert.Equal(Path.Combine(repo, "snapshots", commit), snapshot);
        Assert.Equal(snapshot, model);
        Assert.Equal(files["model.safetensors"].Content, File.ReadAllBytes(weights));
        Assert.Equal(files["config.json"].Content, File.ReadAllBytes(pinned));
        Assert.Empty(bed.Server.Requests);
    }

    [Fact]
    public async Task Offline_CacheMiss_FailsClearly_WithoutContactingTheHub()
    {
        using var offline = bed.Client(o => o with { Offline = true });

        var error = await Assert.ThrowsAsync<HubOfflineException>(() => offline.DownloadSnapshotAsync(HubTestBed.ModelId));

        Assert.Contains("HF_HUB_OFFLINE", error.Message, StringComparison.Ordinal);
        Assert.Contains("'org/tiny-model'", error.Message, StringComparison.Ordinal);
        Assert.Empty(bed.Server.Requests);
    }

    [Fact]
    public async Task Offline_MissingFileOfACachedRevision_FailsClearly()
    {
        using (var client = bed.Client())
        {
            await client.DownloadFileAsync(HubTestBed.ModelId, "config.json");
        }

        using var offline = bed.Client(o => o with { Offline = true });

        var error = await Assert.ThrowsAsync<HubOfflineException>(() => offline.DownloadFileAsync(HubTestBed.ModelId, "README.md"));

        Assert.Contains("'README.md'", error.Message, StringComparison.Ordinal);
    }
}
