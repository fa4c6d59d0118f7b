using LoQT.Hub;

namespace LoQT.Tests.Hub;

/// <summary><see cref="HubOptions.FromEnvironment"/> reads the variables huggingface_hub reads, in its precedence.</summary>
public sealed class HubOptionsTests : IDisposable
{
    private readonly string home = Path.Combine(Path.GetTempPath(), "loqt-hfhome-" + Guid.NewGuid().ToString("N"));

    public HubOptionsTests() => Directory.CreateDirectory(home);

    public void Dispose() => Directory.Delete(home, recursive: true);

    [Fact]
    public void Defaults_ArePublicHubAndHomeCache()
    {
        var options = HubOptions.FromEnvironment(_ => null);

        Assert.Equal("https://huggingface.co", options.Endpoint);
        Assert.EndsWith(Path.Combine(".cache", "huggingface", "hub"), options.CacheDir, StringComparison.Ordinal);
        Assert.False(options.Offline);
    }

    [Fact]
    public void HfHome_DecidesCacheAndTokenFile()
    {
        File.WriteAllText(Path.Combine(home, "token"), "hf_from_file\n");

        var options = HubOptions.FromEnvironment(Env(("HF_HOME", home)));

        Assert.Equal(Path.Combine(home, "hub"), options.CacheDir);
        Assert.Equal("hf_from_file", options.Token);
    }

    [Fact]
    public void HfToken_WinsOverTheTokenFile()
    {
        File.WriteAllText(Path.Combine(home, "token"), "hf_from_file");

        var options = HubOptions.FromEnvironment(Env(("HF_HOME", home), ("HF_TOKEN", "hf_from_env")));

        Assert.Equal("hf_from_env", options.Token);
    }

    [Fact]
    public void HfHubCache_WinsOverHfHome()
    {
        var options = HubOptions.FromEnvironment(Env(("HF_HOME", home), ("HF_HUB_CACHE", "/data/hf-cache")));

        Assert.Equal("/data/hf-cache", options.CacheDir);
    }

    [Fact]
    public void HfEndpoint_IsUsedWithoutTrailingSlash()
    {
        var options = HubOptions.FromEnvironment(Env(("HF_ENDPOINT", "https://hf-mirror.example/")));

        Assert.Equal("https://hf-mirror.example", options.Endpoint);
    }

    [Theory]
    [InlineData("1", true)]
    [InlineData("true", true)]
    [InlineData("YES", true)]
    [InlineData("0", false)]
    [InlineData("", false)]
    public void HfHubOffline_AcceptsHuggingFaceTruthyValues(string value, bool offline) =>
        Assert.Equal(offline, HubOptions.FromEnvironment(Env(("HF_HUB_OFFLINE", value))).Offline);

    [Fact]
    public void ToString_ShowsOnlyWhetherATokenIsSet()
    {
        var options = new HubOptions { Token = HubTestBed.Token };

        Assert.DoesNotContain(HubTestBed.Token, options.ToString(), StringComparison.Ordinal);
        Assert.Contains("Token = (set)", options.ToString(), StringComparison.Ordinal);
    }

    private static Func<string, string?> Env(params (string Name, string Value)[] variables) =>
        name => variables.FirstOrDefault(v => v.Name == name).Value;
}
