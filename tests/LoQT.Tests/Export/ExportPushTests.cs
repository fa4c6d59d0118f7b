using System.Text;
using LoQT.Tests.Hub;

namespace LoQT.Tests.Export;

/// <summary><c>loqt export --push-to-hub</c> against the loopback Hub server.</summary>
[Collection(ExportCollection.Name)]
public sealed class ExportPushTests(ExportFixture fixture) : IAsyncLifetime
{
    private const string RepoId = "me/tiny-loqt-nf4";
    private HubTestBed bed = null!;

    public async Task InitializeAsync() => bed = await HubTestBed.StartAsync(seedModel: false);

    public async Task DisposeAsync() => await bed.DisposeAsync();

    [Fact]
    public async Task Push_CommitsTheExport_SafetensorsThroughLfs_JsonAndCardInline()
    {
        var output = fixture.NewPath("pushed");

        var (exitCode, stdout, stderr) = await ExportTestSupport.RunAsync(
            "export", "--checkpoint", fixture.RunDirectory, "--output", output, "--max-shard-size", "150000",
            "--push-to-hub", RepoId, "--private", "--endpoint", bed.Server.Endpoint, "--token", HubTestBed.Token);

        Assert.True(exitCode == 0, stderr);
        Assert.Equal(output, stdout.Trim()); // the path is still what stdout ends with
        var repo = bed.Server.FindRepo(RepoId)!;
        Assert.True(repo.Private);
        var commit = Assert.Single(repo.History, c => c.Operations.Count > 0);
        Assert.Contains($"pushed {bed.Server.Endpoint}/{RepoId}/commit/{commit.Sha}", stderr);
        Assert.Equal("Upload LoQT export (nf4)", commit.Summary);

        var files = Directory.EnumerateFiles(output).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(files, commit.Operations.Select(o => o.Path).Order(StringComparer.Ordinal));
        foreach (var (kind, path) in commit.Operations)
        {
            var expected = path.EndsWith(".safetensors", StringComparison.Ordinal) || path == "tokenizer.model" ? "lfsFile" : "file";
            Assert.True(expected == kind, $"{path} went as {kind}, expected {expected}");
            Assert.Equal(File.ReadAllBytes(Path.Combine(output, path)), commit.Files[path].Content);
        }

        Assert.Contains(commit.Operations, o => o.Path.EndsWith(".safetensors", StringComparison.Ordinal) && o.Path.StartsWith("model-", StringComparison.Ordinal));
        Assert.Contains("model_id = \"me/tiny-loqt-nf4\"", Encoding.UTF8.GetString(commit.Files["README.md"].Content));
    }

    [Fact]
    public async Task FailedPush_KeepsTheCompleteExport_AndReportsTheError()
    {
        var output = fixture.NewPath("push-refused");

        var (exitCode, _, stderr) = await ExportTestSupport.RunAsync(
            "export", "--checkpoint", fixture.RunDirectory, "--output", output,
            "--push-to-hub", RepoId, "--endpoint", bed.Server.Endpoint, "--token", "hf_not_a_valid_token");

        Assert.Equal(1, exitCode);
        Assert.StartsWith("error: ", stderr.Split('\n').Last(l => l.Length > 0));
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors")));
        Assert.DoesNotContain("hf_not_a_valid_token", stderr);
    }
}
