using System.Security.Cryptography;
using System.Text.Json;
using LoQT.Tests.Support;

namespace LoQT.Tests.Packaging;

/// <summary>
/// The LoQT.Build package in a project that references it from a feed: LoqtAdapt trains the tiny fixture model with
/// the packed tool (found through the project's local tool manifest, restored by the targets), is skipped when nothing
/// changed, runs again when an option changes; missing properties fail with their LOQT1xx codes before any work.
/// </summary>
[Collection(PackagingCollection.Name)]
public sealed class LoqtBuildTargetsTests(PackagedLoqt packages)
{
    private static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task LoqtAdapt_TrainsThenIsSkippedWhileNothingChanged()
    {
        var project = await CreateProjectAsync(withTool: true);

        var first = await MsBuildAsync(project, "LoqtAdapt");
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains("LoqtAdapt: training", first.Output);
        var checkpoint = LatestCheckpoint(project);
        Assert.Equal("checkpoint-0000002", Path.GetFileName(checkpoint));
        Assert.True(File.Exists(Path.Combine(checkpoint, "adapters.safetensors")), first.ToString());
        var written = Snapshot(Path.Combine(project, "runs", "tiny"));

        var second = await MsBuildAsync(project, "LoqtAdapt");

        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("Skipping target \"_LoqtAdaptRun\" because all output files are up-to-date", second.Output);
        Assert.Contains("LoqtAdapt: runs/tiny is up to date", second.Output);
        Assert.DoesNotContain("LoqtAdapt: training", second.Output);
        Assert.Equal(written, Snapshot(Path.Combine(project, "runs", "tiny")));
    }

    [Fact]
    public async Task LoqtAdapt_TrainsAgainWhenAnOptionChanges()
    {
        var project = await CreateProjectAsync(withTool: true);
        var first = await MsBuildAsync(project, "LoqtAdapt");
        Assert.True(first.ExitCode == 0, first.ToString());

        var longer = await MsBuildAsync(project, "LoqtAdapt", "-p:LoqtSteps=3");

        Assert.True(longer.ExitCode == 0, longer.ToString());
        Assert.Contains("LoqtAdapt: training", longer.Output);
        Assert.Equal("checkpoint-0000003", Path.GetFileName(LatestCheckpoint(project)));
        Assert.Contains("--steps \"3\"", File.ReadAllText(Path.Combine(project, "obj", "loqt", "adapt.rsp")));
    }

    [Theory]
    [InlineData("LoqtAdapt", "LoqtModel", "LOQT100")]
    [InlineData("LoqtAdapt", "LoqtOutput", "LOQT102")]
    [InlineData("LoqtExport", "LoqtExportOutput", "LOQT110")]
    [InlineData("LoqtPush", "LoqtPushRepo", "LOQT120")]
    public async Task MissingProperty_FailsWithItsCodeBeforeAnyWork(string target, string property, string code)
    {
        var project = await CreateProjectAsync(withTool: false);

        // An empty global property unsets what the project sets; the tool command would fail if anything ran.
        var result = await MsBuildAsync(project, target, $"-p:{property}=", "-p:LoqtToolCommand=false");

        Assert.True(result.ExitCode != 0, result.ToString());
        Assert.Contains($"error {code}: ", result.Output);
        Assert.Contains(property, result.Output.Split('\n').First(l => l.Contains($"error {code}: ", StringComparison.Ordinal)));
        Assert.DoesNotContain("LoqtAdapt: training", result.Output);
        Assert.False(Directory.Exists(Path.Combine(project, "runs")), result.ToString());
    }

    [Fact]
    public async Task NoTrainingData_FailsWithLoqt101()
    {
        var project = await CreateProjectAsync(withTool: false);
        File.Delete(Path.Combine(project, "data", "train.jsonl")); // the project's <LoqtDataset Include="data/*.jsonl" /> now matches nothing

        var result = await MsBuildAsync(project, "LoqtAdapt", "-p:LoqtToolCommand=false");

        Assert.True(result.ExitCode != 0, result.ToString());
        Assert.Contains("error LOQT101: ", result.Output);
    }

    [Fact]
    public async Task LoqtExport_TrainsThenExportsAndIsSkippedWhileNothingChanged()
    {
        var project = await CreateProjectAsync(withTool: true);

        var first = await MsBuildAsync(project, "LoqtExport", "-p:LoqtExportOutput=exported/tiny");
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains("LoqtAdapt: training", first.Output);
        Assert.Contains("LoqtExport: exporting", first.Output);
        var exported = Path.Combine(project, "exported", "tiny");
        Assert.True(File.Exists(Path.Combine(exported, "config.json")), first.ToString());
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(exported, "config.json"))))
        {
            Assert.Equal("bitsandbytes", config.RootElement.GetProperty("quantization_config").GetProperty("quant_method").GetString());
        }

        var written = Snapshot(exported);

        var second = await MsBuildAsync(project, "LoqtExport", "-p:LoqtExportOutput=exported/tiny");

        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("Skipping target \"_LoqtExportRun\" because all output files are up-to-date", second.Output);
        Assert.Equal(written, Snapshot(exported));
    }

    /// <summary>A project that references LoQT.Build from the feed and trains tiny-llama for two steps on a dozen records.</summary>
    private async Task<string> CreateProjectAsync(bool withTool)
    {
        await packages.EnsureLibraryPackagesAsync();
        if (withTool)
        {
            await packages.EnsureToolPackagesAsync();
        }

        var project = packages.NewFolder("msbuild");
        Directory.CreateDirectory(Path.Combine(project, "data"));
        File.WriteAllLines(Path.Combine(project, "data", "train.jsonl"), Enumerable.Range(1, 12).Select(i =>
            JsonSerializer.Serialize(new Dictionary<string, string> { ["prompt"] = $"What is {i} plus {i}?", ["completion"] = $" {2 * i}." })));
        File.WriteAllText(Path.Combine(project, "Sample.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <TargetFramework>net10.0</TargetFramework>
                <LoqtModel>{TestPaths.Fixture("tiny-llama")}</LoqtModel>
                <LoqtOutput>runs/tiny</LoqtOutput>
                <LoqtTask>completion</LoqtTask>
                <LoqtRank>4</LoqtRank>
                <LoqtSteps>2</LoqtSteps>
                <LoqtBatchSize>2</LoqtBatchSize>
                <LoqtSeqLen>32</LoqtSeqLen>
                <LoqtExportOutput>exported/tiny</LoqtExportOutput>
                <LoqtPushRepo>someone/tiny-loqt</LoqtPushRepo>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="LoQT.Build" Version="{packages.Version}" PrivateAssets="all" />
                <LoqtDataset Include="data/*.jsonl" />
              </ItemGroup>
            </Project>
            """);
        if (withTool)
        {
            // The default way the targets find the tool: `dotnet loqt` through a local manifest, restored by the targets.
            packages.WriteToolManifest(project);
        }

        return project;
    }

    private Task<CommandResult> MsBuildAsync(string project, string target, params string[] properties) =>
        packages.DotnetAsync(project, BuildTimeout, ["msbuild", "-restore", "-t:" + target, "-v:n", "-tl:off", "-nologo", .. properties]);

    private static string LatestCheckpoint(string project)
    {
        var output = Path.Combine(project, "runs", "tiny");
        using var latest = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "latest.json")));
        return Path.Combine(output, latest.RootElement.GetProperty("checkpoint").GetString()!);
    }

    /// <summary>Every file under a folder with its write time and content hash.</summary>
    private static SortedDictionary<string, string> Snapshot(string folder) =>
        new(Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).ToDictionary(
            f => Path.GetRelativePath(folder, f),
            f => File.GetLastWriteTimeUtc(f).Ticks + ":" + Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))), StringComparer.Ordinal);
}
