using LoQT.Tests.Support;
using LoQT.Tests.Tool;

namespace LoQT.Tests.Hub;

/// <summary>
/// Where <c>loqt download</c> gets its token, as huggingface_hub does: <c>--token</c>, else <c>HF_TOKEN</c>, else the token
/// file in <c>$HF_HOME</c>. A gated repository that only the valid token can read tells which one was sent.
/// </summary>
[Collection(ProcessEnvironmentCollection.Name)]
public sealed class HubTokenSourceTests : IAsyncLifetime
{
    private const string GatedId = "meta/gated-model";
    private readonly EnvironmentScope environment = new();
    private HubTestBed bed = null!;

    private string HfHome => Path.Combine(bed.Root, "hf-home");

    public async Task InitializeAsync()
    {
        bed = await HubTestBed.StartAsync(seedModel: false);
        var gated = bed.Server.AddRepo(GatedId, new Dictionary<string, byte[]> { ["config.json"] = "{}"u8.ToArray() });
        gated.Gated = true;
        gated.AcceptedTokens.Add(HubTestBed.Token);
        bed.Server.ValidTokens.Add("hf_ValidButNotAccepted_0000");
        Directory.CreateDirectory(HfHome);
        environment.Set("HF_ENDPOINT", bed.Server.Endpoint);
        environment.Set("HF_HOME", HfHome);
    }

    public async Task DisposeAsync()
    {
        environment.Dispose();
        await bed.DisposeAsync();
    }

    [Fact]
    public async Task TokenFileInHfHome_IsUsed_AndTheCacheGoesToHfHomeHub()
    {
        File.WriteAllText(Path.Combine(HfHome, "token"), HubTestBed.Token + "\n");

        var (exitCode, output, error) = await ToolRunner.RunAsync("download", GatedId);

        Assert.True(exitCode == 0, error);
        Assert.StartsWith(Path.Combine(HfHome, "hub", "models--meta--gated-model", "snapshots"), output.Trim(), StringComparison.Ordinal);
        Assert.DoesNotContain(HubTestBed.Token, output + error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HfToken_WinsOverTheTokenFile()
    {
        File.WriteAllText(Path.Combine(HfHome, "token"), "hf_ValidButNotAccepted_0000");
        environment.Set("HF_TOKEN", HubTestBed.Token);

        var (exitCode, _, error) = await ToolRunner.RunAsync("download", GatedId);

        Assert.True(exitCode == 0, error);
    }

    [Fact]
    public async Task TokenOption_WinsOverHfToken()
    {
        environment.Set("HF_TOKEN", "hf_ValidButNotAccepted_0000");

        // Without the option first: once downloaded, the file would come from the cache.
        var withoutOption = await ToolRunner.RunAsync("download", GatedId);
        var withOption = await ToolRunner.RunAsync("download", GatedId, "--token", HubTestBed.Token);

        Assert.True(withOption.ExitCode == 0, withOption.Error);
        Assert.Equal(1, withoutOption.ExitCode);
        Assert.Contains("the token you passed has no access", withoutOption.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("hf_ValidButNotAccepted_0000", withoutOption.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HfHubOffline_ServesTheCache_AndAMissIsAClearError()
    {
        Assert.Equal(0, (await ToolRunner.RunAsync("download", GatedId, "--token", HubTestBed.Token)).ExitCode);
        var before = bed.Server.Requests.Count;
        environment.Set("HF_HUB_OFFLINE", "1");

        var cached = await ToolRunner.RunAsync("download", GatedId);
        var miss = await ToolRunner.RunAsync("download", "org/never-downloaded");

        Assert.True(cached.ExitCode == 0, cached.Error);
        Assert.Equal(1, miss.ExitCode);
        Assert.StartsWith("error: Offline mode is on (HF_HUB_OFFLINE) and 'org/never-downloaded'", miss.Error, StringComparison.Ordinal);
        Assert.Equal(before, bed.Server.Requests.Count);
    }
}
