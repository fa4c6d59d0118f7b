using System.Text.Json;
using LoQT.Tests.Support;
using LoQT.Tests.Tool;

namespace LoQT.Tests.Hub;

/// <summary>
/// <c>--model REPO_ID</c> of eval, generate, tokenize and adapt: the repo is downloaded through the cache (only what is
/// needed), with the Hub settings users give through the environment (HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE, HF_HUB_OFFLINE).
/// </summary>
[Collection(ProcessEnvironmentCollection.Name)]
public sealed class HubModelOptionTests : IAsyncLifetime
{
    private const string RepoId = "org/tiny-llama";
    private readonly EnvironmentScope environment = new();
    private HubTestBed bed = null!;

    public async Task InitializeAsync()
    {
        bed = await HubTestBed.StartAsync(seedModel: false);
        var files = new[] { "config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json" }
            .ToDictionary(f => f, f => File.ReadAllBytes(TestPaths.Fixture("tiny-llama", f)));
        files["pytorch_model.bin"] = HubTestBed.Bytes(5000, seed: 1); // must never be downloaded
        files["README.md"] = "# tiny llama\n"u8.ToArray();
        bed.Server.AddRepo(RepoId, files);
        environment.Set("HF_ENDPOINT", bed.Server.Endpoint);
        environment.Set("HF_HUB_CACHE", bed.CacheDir);
        environment.Set("HF_TOKEN", HubTestBed.Token);
    }

    public async Task DisposeAsync()
    {
        environment.Dispose();
        await bed.DisposeAsync();
    }

    [Fact]
    public async Task Eval_RepoId_DownloadsTheModelThroughTheCache_NeverTheBinWeights()
    {
        var dataset = Path.Combine(bed.Root, "text.txt");
        File.WriteAllText(dataset, "The cat sat on the mat.\n");

        var remote = await ToolRunner.RunAsync("eval", "--model", RepoId, "--dataset", dataset, "--json");
        var local = await ToolRunner.RunAsync("eval", "--model", TestPaths.Fixture("tiny-llama"), "--dataset", dataset, "--json");

        Assert.True(remote.ExitCode == 0, remote.Error);
        Assert.Equal(local.Output, remote.Output);
        Assert.Contains($"downloaded {RepoId}/model.safetensors", remote.Error, StringComparison.Ordinal);
        Assert.Empty(bed.Server.RequestsTo(".bin"));
        Assert.Empty(bed.Server.RequestsTo("README.md"));
        Assert.Contains(bed.CacheEntries(RepoId), e => e.StartsWith("snapshots/", StringComparison.Ordinal) && e.EndsWith("/model.safetensors", StringComparison.Ordinal));
        Assert.DoesNotContain(HubTestBed.Token, remote.Output + remote.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Generate_RepoId_PrintsWhatTheLocalModelPrints()
    {
        var remote = await ToolRunner.RunAsync("generate", "--model", RepoId, "--prompt", "Once upon", "--max-new-tokens", "6");
        var local = await ToolRunner.RunAsync("generate", "--model", TestPaths.Fixture("tiny-llama"), "--prompt", "Once upon", "--max-new-tokens", "6");

        Assert.True(remote.ExitCode == 0, remote.Error);
        Assert.Equal(local.Output, remote.Output);
    }

    [Fact]
    public async Task Tokenize_RepoId_DownloadsOnlyTheTokenizerFiles()
    {
        var remote = await ToolRunner.RunAsync("tokenize", "--model", RepoId, "--text", "Hello world", "--special", "--json");
        var local = await ToolRunner.RunAsync("tokenize", "--model", TestPaths.Fixture("tiny-llama"), "--text", "Hello world", "--special", "--json");

        Assert.True(remote.ExitCode == 0, remote.Error);
        Assert.Equal(local.Output, remote.Output);
        Assert.Equal(1, JsonSerializer.Deserialize<int[]>(remote.Output)![0]); // BOS, from tokenizer_config.json
        Assert.Empty(bed.Server.RequestsTo("model.safetensors"));
        Assert.NotEmpty(bed.Server.RequestsTo("tokenizer.model"));
    }

    [Fact]
    public async Task Adapt_RepoId_TrainsTheDownloadedModel()
    {
        var dataset = Path.Combine(bed.Root, "text.txt");
        File.WriteAllText(dataset, string.Join('\n', Enumerable.Repeat("The cat sat on the mat and looked at the dog.", 8)) + "\n");
        var output = Path.Combine(bed.Root, "run");

        var (exitCode, _, error) = await ToolRunner.RunAsync(
            "adapt", "--model", RepoId, "--dataset", dataset, "--output", output, "--steps", "1", "--rank", "4", "--seq-len", "16", "--batch-size", "1");

        Assert.True(exitCode == 0, error);
        Assert.Contains($"downloaded {RepoId}/config.json", error, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(output, "latest.json")), "the run wrote no checkpoint");
    }

    [Fact]
    public async Task Offline_RepoIdInTheCache_IsUsedWithoutTheNetwork_AndAMissSaysWhatToDo()
    {
        var dataset = Path.Combine(bed.Root, "text.txt");
        File.WriteAllText(dataset, "The cat sat on the mat.\n");
        Assert.Equal(0, (await ToolRunner.RunAsync("eval", "--model", RepoId, "--dataset", dataset)).ExitCode);
        var before = bed.Server.Requests.Count;
        environment.Set("HF_HUB_OFFLINE", "1");

        var cached = await ToolRunner.RunAsync("eval", "--model", RepoId, "--dataset", dataset);
        var miss = await ToolRunner.RunAsync("eval", "--model", "org/never-downloaded", "--dataset", dataset);

        Assert.True(cached.ExitCode == 0, cached.Error);
        Assert.Equal(before, bed.Server.Requests.Count);
        Assert.Equal(1, miss.ExitCode);
        Assert.StartsWith("error: Offline mode is on (HF_HUB_OFFLINE)", miss.Error, StringComparison.Ordinal);
        Assert.Contains("loqt download org/never-downloaded", miss.Error, StringComparison.Ordinal);
    }
}
