using LoQT.Tests.Tool;
namespace LoQT.Tests.Hub;

/// <summary><c>loqt download</c> and <c>loqt push</c> end to end against the loopback Hub.</summary>
public sealed class HubCommandTests : IAsyncLifetime
{
    private HubTestBed bed = null!;

    public async Task InitializeAsync() => bed = await HubTestBed.StartAsync();

    public async Task DisposeAsync() => await bed.DisposeAsync();

    private string[] HubArgs => ["--endpoint", bed.Server.Endpoint, "--token", HubTestBed.Token];

    [Fact]
    public async Task Download_ReportsEachFile_AndPrintsTheSnapshotPathLast()
    {
        var (exitCode, output, error) = await ToolRunner.RunAsync(["download", HubTestBed.ModelId, "--cache-dir", bed.CacheDir, .. HubArgs]);

        Assert.True(exitCode == 0, error);
        var commit = bed.Server.FindRepo(HubTestBed.ModelId)!.Resolve("main")!.Sha;
        Assert.Equal(Path.Combine(bed.RepoCache(), "snapshots", commit) + Environment.NewLine, output);
        Assert.Contains("downloaded model.safetensors (293.0 KB)", error, StringComparison.Ordinal);
        Assert.Contains("downloaded sub/notes.txt", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Download_WithIncludeExcludeAndLocalDir_PrintsTheLocalDirLast()
    {
        var localDir = Path.Combine(bed.Root, "out");

        var (exitCode, output, error) = await ToolRunner.RunAsync(
            ["download", HubTestBed.ModelId, "--include", "*.json", "--include", "*.safetensors", "--exclude", "tokenizer*",
             "--local-dir", localDir, "--cache-dir", bed.CacheDir, .. HubArgs]);

        Assert.True(exitCode == 0, error);
        Assert.Equal(localDir, ToolRunner.LastLine(output));
        Assert.Equal(["config.json", "model.safetensors"], Directory.GetFiles(localDir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Download_SecondRun_SaysFilesAreCached()
    {
        await ToolRunner.RunAsync(["download", HubTestBed.ModelId, "--cache-dir", bed.CacheDir, .. HubArgs]);

        var (exitCode, _, error) = await ToolRunner.RunAsync(["download", HubTestBed.ModelId, "--cache-dir", bed.CacheDir, .. HubArgs]);

        Assert.Equal(0, exitCode);
        Assert.Contains("cached config.json", error, StringComparison.Ordinal);
        Assert.DoesNotContain("downloaded", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Download_UnknownRepo_PrintsTheErrorToStderr_AndExits1()
    {
        var (exitCode, output, error) = await ToolRunner.RunAsync(["download", "org/missing", "--cache-dir", bed.CacheDir, .. HubArgs]);

        Assert.Equal(1, exitCode);
        Assert.StartsWith("error: Repository 'org/missing' not found", error, StringComparison.Ordinal);
        Assert.Equal(string.Empty, output);
    }

    [Fact]
    public async Task Download_MalformedRepoId_IsAUsageError()
    {
        var (exitCode, _, error) = await ToolRunner.RunAsync(["download", "not a repo", "--cache-dir", bed.CacheDir, .. HubArgs]);

        Assert.Equal(2, exitCode);
        Assert.Contains("'not a repo' is not a Hub repository id", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Download_Offline_ServesTheCacheWithoutTheNetwork()
    {
        await ToolRunner.RunAsync(["download", HubTestBed.ModelId, "--cache-dir", bed.CacheDir, .. HubArgs]);
        var before = bed.Server.Requests.Count;

        var (exitCode, output, _) = await ToolRunner.RunAsync(["download", HubTestBed.ModelId, "--offline", "--cache-dir", bed.CacheDir, .. HubArgs]);

        Assert.Equal(0, exitCode);
        Assert.StartsWith(Path.Combine(bed.RepoCache(), "snapshots"), ToolRunner.LastLine(output), StringComparison.Ordinal);
        Assert.Equal(before, bed.Server.Requests.Count);
    }

    [Fact]
    public async Task ModelOption_RepoId_IsDownloadedThroughTheCache_WithProgressOnTheLog()
    {
        using var log = new StringWriter();

        var dir = await LoQT.Tool.Commands.HubCommandOptions.ResolveModelAsync(
            HubTestBed.ModelId, log, CancellationToken.None, token: HubTestBed.Token, endpoint: bed.Server.Endpoint, cacheDir: bed.CacheDir);

        Assert.StartsWith(Path.Combine(bed.RepoCache(), "snapshots"), dir, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(dir, "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(dir, "README.md")));
        Assert.Contains("downloaded org/tiny-model/model.safetensors", log.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Push_ListsEachFile_AndPrintsTheCommitUrlLast()
    {
        var folder = Path.Combine(bed.Root, "export");
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), HubTestBed.Bytes(20_000, seed: 5));
        File.WriteAllText(Path.Combine(folder, "config.json"), "{}");

        var (exitCode, output, error) = await ToolRunner.RunAsync(
            ["push", "--folder", folder, "--repo", "me/pushed", "--private", "--message", "Add export", .. HubArgs]);

        Assert.True(exitCode == 0, error);
        var repo = bed.Server.FindRepo("me/pushed")!;
        Assert.True(repo.Private);
        Assert.Equal("Add export", repo.History[^1].Summary);
        Assert.Equal($"{bed.Server.Endpoint}/me/pushed/commit/{repo.Refs["main"]}" + Environment.NewLine, output);
        Assert.Contains("lfs     model.safetensors uploaded", error, StringComparison.Ordinal);
        Assert.Contains("inline  config.json", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Push_MissingFolder_IsAUsageError()
    {
        var (exitCode, _, error) = await ToolRunner.RunAsync(["push", "--folder", Path.Combine(bed.Root, "nope"), "--repo", "me/x", .. HubArgs]);

        Assert.Equal(2, exitCode);
        Assert.Contains("is not a directory", error, StringComparison.Ordinal);
        Assert.Empty(bed.Server.Requests);
    }
}
