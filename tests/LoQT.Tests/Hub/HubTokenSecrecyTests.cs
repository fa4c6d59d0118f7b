using LoQT.Hub;
using LoQT.Tests.Tool;

namespace LoQT.Tests.Hub;

/// <summary>The access token never shows up in exceptions, logs or command output, whatever goes wrong.</summary>
public sealed class HubTokenSecrecyTests : IAsyncLifetime
{
    private HubTestBed bed = null!;

    public async Task InitializeAsync()
    {
        bed = await HubTestBed.StartAsync();
        bed.Server.AddRepo("meta/gated", new Dictionary<string, byte[]> { ["config.json"] = "{}"u8.ToArray() }).Gated = true;
        bed.Server.Faults.EchoAuthorizationInErrors = true;
    }

    public async Task DisposeAsync() => await bed.DisposeAsync();

    [Fact]
    public async Task Token_IsAbsentFromEveryFailure_EvenWhenTheServerEchoesIt()
    {
        using var client = bed.Client(o => o with { MaxRetries = 1 });
        var failures = new List<Exception>
        {
            await Record(() => client.DownloadFileAsync("meta/gated", "config.json")),
            await Record(() => client.DownloadFileAsync(HubTestBed.ModelId, "missing.json")),
            await Record(() => client.DownloadSnapshotAsync("org/missing")),
            await Record(() => client.DownloadSnapshotAsync(HubTestBed.ModelId, new SnapshotDownloadOptions { Revision = "nope" })),
            await Record(() => client.CreateRepoAsync(HubTestBed.ModelId, existOk: false)), // 409 whose server message quotes the token
        };
        bed.Server.Faults.FailNext(500, times: 10, pathContains: "/resolve/main/README.md");
        failures.Add(await Record(() => client.DownloadFileAsync(HubTestBed.ModelId, "README.md")));
        bed.Server.Faults.CorruptLfsBodies = true;
        failures.Add(await Record(() => client.DownloadFileAsync(HubTestBed.ModelId, "model.safetensors")));
        using var offline = bed.Client(o => o with { Offline = true });
        failures.Add(await Record(() => offline.DownloadSnapshotAsync("org/never-downloaded")));

        Assert.All(failures, f => Assert.IsAssignableFrom<HubException>(f));
        Assert.Contains(failures, f => f.Message.Contains("***", StringComparison.Ordinal));
        Assert.All(failures, f => Assert.DoesNotContain(HubTestBed.Token, f.ToString(), StringComparison.Ordinal));
        Assert.NotEmpty(bed.Log);
        Assert.All(bed.Log, line => Assert.DoesNotContain(HubTestBed.Token, line, StringComparison.Ordinal));
        Assert.DoesNotContain(HubTestBed.Token, client.Options.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Token_IsAbsentFromCommandOutput_OnSuccessAndFailure()
    {
        var folder = Path.Combine(bed.Root, "export");
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), HubTestBed.Bytes(1000, seed: 3));
        string[] hub = ["--endpoint", bed.Server.Endpoint, "--token", HubTestBed.Token, "--cache-dir", bed.CacheDir];
        bed.Server.Faults.FailNext(503, times: 2, pathContains: "/resolve/main/config.json");

        var runs = new[]
        {
            await ToolRunner.RunAsync(["download", HubTestBed.ModelId, .. hub]),
            await ToolRunner.RunAsync(["download", "meta/gated", .. hub]),
            await ToolRunner.RunAsync(["download", HubTestBed.ModelId, "--revision", "nope", .. hub]),
            await ToolRunner.RunAsync(["push", "--folder", folder, "--repo", "me/model", "--endpoint", bed.Server.Endpoint, "--token", HubTestBed.Token]),
        };

        Assert.Equal([0, 1, 1, 0], runs.Select(r => r.ExitCode));
        Assert.All(runs, r => Assert.DoesNotContain(HubTestBed.Token, r.Output + r.Error, StringComparison.Ordinal));
    }

    private static async Task<Exception> Record(Func<Task> action) =>
        await Assert.ThrowsAnyAsync<Exception>(action);
}
