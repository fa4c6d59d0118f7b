using LoQT.Hub;

namespace LoQT.Tests.Hub;

/// <summary><see cref="HubClient.ResolveModelAsync"/>: what every <c>--model</c> option goes through.</summary>
public sealed class HubResolveModelTests : IAsyncLifetime
{
    private const string LlamaId = "org/llama-mixed";
    private HubTestBed bed = null!;

    public async Task InitializeAsync()
    {
        bed = await HubTestBed.StartAsync(seedModel: false);
        bed.Server.AddRepo(LlamaId, new Dictionary<string, byte[]>
        {
            ["config.json"] = "{}"u8.ToArray(),
            ["generation_config.json"] = "{}"u8.ToArray(),
            ["tokenizer.json"] = "{}"u8.ToArray(),
            ["tokenizer_config.json"] = "{}"u8.ToArray(),
            ["special_tokens_map.json"] = "{}"u8.ToArray(),
            ["model-00001-of-00002.safetensors"] = HubTestBed.Bytes(2000, seed: 1),
            ["model-00002-of-00002.safetensors"] = HubTestBed.Bytes(2000, seed: 2),
            ["model.safetensors.index.json"] = "{\"weight_map\":{}}"u8.ToArray(),
            ["pytorch_model.bin"] = HubTestBed.Bytes(4000, seed: 3),
            ["training_args.bin"] = HubTestBed.Bytes(100, seed: 4),
            ["original/consolidated.00.pth"] = HubTestBed.Bytes(4000, seed: 5),
            ["original/tokenizer.model"] = HubTestBed.Bytes(100, seed: 6),
            ["README.md"] = "# model"u8.ToArray(),
            [".gitattributes"] = "*.safetensors filter=lfs"u8.ToArray(),
        });
    }

    public async Task DisposeAsync() => await bed.DisposeAsync();

    [Fact]
    public async Task ExistingDirectory_IsReturnedAsIs_WithoutContactingTheHub()
    {
        var dir = Directory.CreateDirectory(Path.Combine(bed.Root, "org", "llama-mixed")).FullName;
        using var client = bed.Client();

        var resolved = await client.ResolveModelAsync(dir);

        Assert.Equal(dir, resolved);
        Assert.Empty(bed.Server.Requests);
    }

    [Fact]
    public async Task RepoId_DownloadsConfigTokenizerAndSafetensors_NeverBinOrPth()
    {
        using var client = bed.Client();

        var snapshot = await client.ResolveModelAsync(LlamaId);

        var files = Directory.EnumerateFiles(snapshot, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(snapshot, f).Replace('\\', '/')).Order(StringComparer.Ordinal);
        Assert.Equal(
            [
                "config.json", "generation_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                "model.safetensors.index.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
            ],
            files);
        Assert.Empty(bed.Server.RequestsTo(".bin"));
        Assert.Empty(bed.Server.RequestsTo(".pth"));
    }

    [Fact]
    public async Task Tokenizer_RepoId_DownloadsOnlyTheTokenizerFilesAndConfig()
    {
        using var client = bed.Client();

        var snapshot = await client.ResolveTokenizerAsync(LlamaId);

        var files = Directory.EnumerateFiles(snapshot, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(snapshot, f).Replace('\\', '/')).Order(StringComparer.Ordinal);
        Assert.Equal(["config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"], files);
        Assert.Empty(bed.Server.RequestsTo(".safetensors"));
    }

    [Fact]
    public async Task Tokenizer_RepoWithoutTokenizer_IsRejected()
    {
        bed.Server.AddRepo("org/weights-only", new Dictionary<string, byte[]> { ["config.json"] = "{}"u8.ToArray() });
        using var client = bed.Client();

        var error = await Assert.ThrowsAsync<HubException>(() => client.ResolveTokenizerAsync("org/weights-only"));

        Assert.Contains("no tokenizer.json or tokenizer.model", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RepoWithoutSafetensors_FallsBackToPyTorchWeights()
    {
        bed.Server.AddRepo("org/bin-only", new Dictionary<string, byte[]>
        {
            ["config.json"] = "{}"u8.ToArray(),
            ["pytorch_model.bin"] = HubTestBed.Bytes(100, seed: 7),
            ["training_args.bin"] = HubTestBed.Bytes(100, seed: 8),
        });
        using var client = bed.Client();

        var snapshot = await client.ResolveModelAsync("org/bin-only");

        Assert.True(File.Exists(Path.Combine(snapshot, "pytorch_model.bin")));
        Assert.False(File.Exists(Path.Combine(snapshot, "training_args.bin")));
    }

    [Fact]
    public async Task RepoWithoutConfig_IsRejectedAsNotAModel()
    {
        bed.Server.AddRepo("org/not-a-model", new Dictionary<string, byte[]> { ["data.csv"] = "a,b"u8.ToArray() });
        using var client = bed.Client();

        var error = await Assert.ThrowsAsync<HubException>(() => client.ResolveModelAsync("org/not-a-model"));

        Assert.Contains("no config.json", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NeitherDirectoryNorRepoId_IsRejectedNamingTheArgument()
    {
        using var client = bed.Client();

        var error = await Assert.ThrowsAsync<ArgumentException>(() => client.ResolveModelAsync("./no/such/dir"));

        Assert.Contains("'./no/such/dir' is neither an existing directory nor a Hugging Face repo id", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Offline_ResolvesFromTheCache()
    {
        string online;
        using (var client = bed.Client())
        {
            online = await client.ResolveModelAsync(LlamaId);
        }

        var before = bed.Server.Requests.Count;
        using var offline = bed.Client(o => o with { Offline = true });

        Assert.Equal(online, await offline.ResolveModelAsync(LlamaId));
        Assert.Equal(before, bed.Server.Requests.Count);
    }

    [Fact]
    public async Task Offline_CacheMiss_SaysHowToFixIt()
    {
        using var offline = bed.Client(o => o with { Offline = true });

        var error = await Assert.ThrowsAsync<HubOfflineException>(() => offline.ResolveModelAsync(LlamaId));

        Assert.Contains($"loqt download {LlamaId}", error.Message, StringComparison.Ordinal);
    }
}
