using LoQT.Tests.Support;

namespace LoQT.Tests.Hub;

/// <summary>
/// Where <c>loqt download</c> gets its token, as huggingface_hub does: <c>--token</c>, else <c>HF_TOKEN</c>, else the token
/// file in <c>$HF_HOME</c>. A gated repository that only the valid token can read tells which one was sent.
/// </summary>
[Collection(ProcessEnvironmentCollection.Name)]
public sealed class HubTokenSourceTests : IAsyncLifetime
{
    private const string GatedId = "meta/gated-model";
    private static readonly string[] Variables = ["HF_ENDPOINT", "HF_TOKEN", "HF_TOKEN_PATH", "HF_HUB_CACHE", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"];

    private readonly Dictionary<string, string?> saved = Variables.ToDictionary(v => v, Environment.GetEnvironmentVariable);
    private HubTestBed bed = null!;

    private string HfHome => Path.Combine(bed.Root, "hf-home");

    public async Task InitializeAsync()
    {
        bed = await HubTestBed.StartAsync(seedModel: false);
        var gated = bed.Server.AddRepo(GatedId, new Dictionary<string, byte[]> { ["config.json"] = "{}"u8.ToArray() });
        gated.Gated = true;
        gated.AcceptedTokens.Add(HubTestBed.Token);
        bed.Server.ValidTokens.Add("hf_ValidButNotAccepted_0000");
        foreach (var variable in Variables)
        {
            Environment.SetEnvironmentVariable(variable, null);
        }

        Directory.CreateDirectory(HfHome);
        Environment.SetEnvironmentVariable("HF_ENDPOINT", bed.Server.Endpoint);
        Environment.SetEnvironmentVariable("HF_HOME", HfHome);
    }

    public async Task DisposeAsync()
    {
        foreach (var (variable, value) in saved)
        {
            Environment.SetEnvironmentVariable(variable, value);
        }

        await bed.DisposeAsync();
    }

    [Fact]
    public async Task TokenFileInHfHome_IsUsed_AndTheCacheGoesToHfHomeHub()
    {
        File.WriteAllText(Path.Combine(HfHome, "token"), HubTestBed.Token + "\n");

        var (exitCode, output, error) = await HubCliRunner.RunAsync("download", GatedId);

        Assert.True(exitCode == 0, error);
        Assert.StartsWith(Path.Combine(HfHome, "hub", "models--meta--gated-model", "snapshots"), output.Trim(), StringComparison.Ordinal);
        Assert.DoesNotContain(HubTestBed.Token, output + error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HfToken_WinsOverTheTokenFile()
    {
        File.WriteAllText(Path.Combine(HfHome, "token"), "hf_ValidButNotAccepted_0000");
        Environment.SetEnvironmentVariable("HF_TOKEN", HubTestBed.Token);

        var (exitCode, _, error) = await HubCliRunner.RunAsync("download", GatedId);

        Assert.True(exitCode == 0, error);
    }

    [Fact]
    public async Task TokenOption_WinsOverHfToken()
    {
        Environment.SetEnvironmentVariable("HF_TOKEN", "hf_ValidButNotAccepted_0000");

        // Without the option first: once downloaded, the file would come from the cache.
        var withoutOption = await HubCliRunner.RunAsync("download", GatedId);
        var withOption = await HubCliRunner.RunAsync("download", GatedId, "--token", HubTestBed.Token);

        Assert.True(withOption.ExitCode == 0, withOption.Error);
        Assert.Equal(1, withoutOption.ExitCode);
        Assert.Contains("the token you passed has no access", withoutOption.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("hf_ValidButNotAccepted_0000", withoutOption.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HfHubOffline_ServesTheCache_AndAMissIsAClearError()
    {
        Assert.Equal(0, (await HubCliRunner.RunAsync("download", GatedId, "--token", HubTestBed.Token)).ExitCode);
        var before = bed.Server.Requests.Count;
        Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");

        var cached = await HubCliRunner.RunAsync("download", GatedId);
        var miss = await HubCliRunner.RunAsync("download", "org/never-downloaded");

        Assert.True(cached.ExitCode == 0, cached.Error);
        Assert.Equal(1, miss.ExitCode);
        Assert.StartsWith("error: Offline mode is on (HF_HUB_OFFLINE) and 'org/never-downloaded'", miss.Error, StringComparison.Ordinal);
        Assert.Equal(before, bed.Server.Requests.Count);
    }
}
