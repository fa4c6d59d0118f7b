using System.Text;
using LoQT.Hub;
using LoQT.Tests.Support;

namespace LoQT.Tests.Hub;

/// <summary>Publishing a folder: create, preupload, LFS (basic and multipart), one ndjson commit.</summary>
public sealed class HubUploadTests : IAsyncLifetime
{
    private const string RepoId = "me/exported-model";
    private HubTestBed bed = null!;
    private string folder = null!;

    public async Task InitializeAsync()
    {
        bed = await HubTestBed.StartAsync(seedModel: false);
        folder = Path.Combine(bed.Root, "export");
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), HubTestBed.Bytes(50_000, seed: 42));
        File.WriteAllText(Path.Combine(folder, "config.json"), "{\"model_type\":\"llama\"}");
        File.WriteAllText(Path.Combine(folder, "README.md"), "# exported\n");
    }

    public async Task DisposeAsync() => await bed.DisposeAsync();

    [Fact]
    public async Task Push_CreatesOneCommit_SafetensorsThroughLfs_JsonAndReadmeInline()
    {
        using var client = bed.Client();

        var commit = await client.UploadFolderAsync(folder, RepoId, new UploadFolderOptions { CommitMessage = "Add NF4 export" });

        var repo = bed.Server.FindRepo(RepoId)!;
        var made = Assert.Single(repo.History, c => c.Operations.Count > 0);
        Assert.Equal(commit.CommitOid, made.Sha);
        Assert.Equal($"{bed.Server.Endpoint}/{RepoId}/commit/{made.Sha}", commit.CommitUrl);
        Assert.Equal("Add NF4 export", made.Summary);
        Assert.Equal([("file", "README.md"), ("file", "config.json"), ("lfsFile", "model.safetensors")], made.Operations.OrderBy(o => o.Path, StringComparer.Ordinal));
        Assert.Equal(File.ReadAllBytes(Path.Combine(folder, "model.safetensors")), made.Files["model.safetensors"].Content);
        Assert.Equal("{\"model_type\":\"llama\"}", Encoding.UTF8.GetString(made.Files["config.json"].Content));
        Assert.Equal(repo.Refs["main"], made.Sha);
        Assert.Single(bed.Server.RequestsTo("/storage-upload/", "PUT"));
        Assert.Single(bed.Server.RequestsTo("/info/lfs/objects/verify", "POST"));
        Assert.Equal((1, 0), (commit.LfsUploaded, commit.LfsAlreadyPresent));
    }

    [Fact]
    public async Task Push_OfAQuantizedModelFolder_CommitsExactlyItsFiles_BinariesThroughLfs_AndLoadsBack()
    {
        var exported = Path.Combine(bed.Root, "tiny-llama-nf4");
        LoQT.Quantization.CheckpointQuantizer.Quantize(TestPaths.Fixture("tiny-llama"), exported, new LoQT.Quantization.CheckpointQuantizationOptions());
        File.WriteAllText(Path.Combine(exported, "README.md"), "# tiny-llama, NF4\n");
        var local = Directory.GetFiles(exported).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        using var client = bed.Client();

        var commit = await client.UploadFolderAsync(exported, "me/tiny-llama-nf4", new UploadFolderOptions { CommitMessage = "NF4 export" });

        var made = Assert.Single(bed.Server.FindRepo("me/tiny-llama-nf4")!.History, c => c.Operations.Count > 0);
        // The weights and the SentencePiece model (binary) go through LFS; JSON, JSONL and the card are committed inline.
        var expected = local.Select(f => (f!.EndsWith(".safetensors", StringComparison.Ordinal) || f.EndsWith(".model", StringComparison.Ordinal) ? "lfsFile" : "file", f));
        Assert.Equal(expected, made.Operations.OrderBy(o => o.Path, StringComparer.Ordinal));
        Assert.All(local, f => Assert.Equal(File.ReadAllBytes(Path.Combine(exported, f!)), made.Files[f!].Content));
        Assert.Equal((2, 0), (commit.LfsUploaded, commit.LfsAlreadyPresent));

        var snapshot = await client.ResolveModelAsync("me/tiny-llama-nf4");
        using var fromHub = LoQT.Models.Llama.LlamaForCausalLM.Load(snapshot);
        using var fromFolder = LoQT.Models.Llama.LlamaForCausalLM.Load(exported);
        using var ids = TorchSharp.torch.tensor(new long[] { 1, 5, 9, 200 }, [1, 4]);
        using var a = fromHub.Forward(ids);
        using var b = fromFolder.Forward(ids);
        using var same = a.Logits.eq(b.Logits).all();
        Assert.True(same.item<bool>(), "the model pushed and downloaded again computes other logits");
    }

    [Fact]
    public async Task SecondPush_SkipsTheLfsObjectTheHubAlreadyHas()
    {
        using var client = bed.Client();
        await client.UploadFolderAsync(folder, RepoId);
        File.WriteAllText(Path.Combine(folder, "README.md"), "# exported, v2\n");

        var second = await client.UploadFolderAsync(folder, RepoId, new UploadFolderOptions { CommitMessage = "Update card" });

        Assert.Equal((0, 1), (second.LfsUploaded, second.LfsAlreadyPresent));
        Assert.Single(bed.Server.RequestsTo("/storage-upload/", "PUT"));
        var repo = bed.Server.FindRepo(RepoId)!;
        Assert.Equal("# exported, v2\n", Encoding.UTF8.GetString(repo.Resolve("main")!.Files["README.md"].Content));
        Assert.Equal(second.CommitOid, repo.Refs["main"]);
    }

    [Fact]
    public async Task LargeLfsObject_GoesThroughMultipartUpload()
    {
        bed.Server.MultipartThreshold = 10_000;
        bed.Server.MultipartChunkSize = 16_384;
        using var client = bed.Client();

        var commit = await client.UploadFolderAsync(folder, RepoId);

        // 50,000 bytes in 16,384-byte parts: 4 part PUTs, then the completion POST.
        var parts = bed.Server.RequestsTo("/part/", "PUT");
        Assert.Equal(["/part/1", "/part/2", "/part/3", "/part/4"], parts.Select(p => p.Path[p.Path.LastIndexOf("/part/", StringComparison.Ordinal)..]));
        Assert.Single(bed.Server.RequestsTo("/complete", "POST"));
        var stored = bed.Server.FindRepo(RepoId)!.Resolve("main")!.Files["model.safetensors"].Content;
        Assert.Equal(File.ReadAllBytes(Path.Combine(folder, "model.safetensors")), stored);
        Assert.Equal(1, commit.LfsUploaded);
    }

    [Fact]
    public async Task Push_NeverSendsTheTokenToStorageUrls()
    {
        bed.Server.MultipartThreshold = 10_000;
        bed.Server.MultipartChunkSize = 16_384;
        using var client = bed.Client();

        await client.UploadFolderAsync(folder, RepoId);

        Assert.All(bed.Server.RequestsTo("/storage-upload/"), r => Assert.Null(r.Authorization));
        Assert.All(bed.Server.RequestsTo("/api/"), r => Assert.Equal("Bearer " + HubTestBed.Token, r.Authorization));
    }

    [Fact]
    public async Task Push_CreatesThePrivateRepo_AndAcceptsAnExistingOne()
    {
        using var client = bed.Client();

        await client.UploadFolderAsync(folder, RepoId, new UploadFolderOptions { Private = true });
        await client.UploadFolderAsync(folder, RepoId, new UploadFolderOptions { Private = true });

        Assert.True(bed.Server.FindRepo(RepoId)!.Private);
        Assert.Equal(2, bed.Server.CreateRequests.Count);
        var create = bed.Server.CreateRequests[0];
        Assert.Equal(("exported-model", "me", true, "model"), (
            create["name"]!.GetValue<string>(), create["organization"]!.GetValue<string>(), create["private"]!.GetValue<bool>(), create["type"]!.GetValue<string>()));
    }

    [Fact]
    public async Task ServerErrorDuringLfsUpload_IsRetried()
    {
        bed.Server.Faults.FailNext(500, times: 1, pathContains: "/storage-upload/", method: "PUT");
        using var client = bed.Client();

        var commit = await client.UploadFolderAsync(folder, RepoId);

        Assert.Equal(2, bed.Server.RequestsTo("/storage-upload/", "PUT").Count);
        Assert.Equal(commit.CommitOid, bed.Server.FindRepo(RepoId)!.Refs["main"]);
    }

    [Fact]
    public async Task PushedFolder_DownloadsBackToIdenticalFiles()
    {
        using var client = bed.Client();
        await client.UploadFolderAsync(folder, RepoId);

        var snapshot = await client.DownloadSnapshotAsync(RepoId, new SnapshotDownloadOptions { Exclude = [".gitattributes"] });

        foreach (var name in new[] { "model.safetensors", "config.json", "README.md" })
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(folder, name)), File.ReadAllBytes(Path.Combine(snapshot, name)));
        }
    }

    [Fact]
    public async Task Push_WithoutToken_FailsBeforeContactingTheHub()
    {
        using var client = bed.Client(token: null);

        var error = await Assert.ThrowsAsync<HubAuthenticationException>(() => client.UploadFolderAsync(folder, RepoId));

        Assert.Contains("needs a token with write access", error.Message, StringComparison.Ordinal);
        Assert.Empty(bed.Server.Requests);
    }

    [Fact]
    public async Task Push_ToMissingBranch_SaysRevisionNotFound()
    {
        using var client = bed.Client();

        var error = await Assert.ThrowsAsync<RevisionNotFoundException>(
            () => client.UploadFolderAsync(folder, RepoId, new UploadFolderOptions { Revision = "no-such-branch" }));

        Assert.Contains("no-such-branch", error.Message, StringComparison.Ordinal);
    }
}
