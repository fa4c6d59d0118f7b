using System.Text.Json;
using System.Xml.Linq;
using LoQT.Tests.Support;

namespace LoQT.Tests.Packaging;

/// <summary>
/// <c>dotnet new loqt-finetune</c> from the packed LoQT.Templates, installed into a private template hive: the options
/// reach the generated files, the project builds against the packed LoQT and LoQT.Build, its Program.cs fine-tunes,
/// evaluates and generates with the tiny fixture model, and its LoqtAdapt target trains with the packed tool.
/// </summary>
[Collection(PackagingCollection.Name)]
public sealed class LoqtFinetuneTemplateTests(PackagedLoqt packages)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task Template_InstantiatedWithOptions_Builds()
    {
        var project = await BuiltCpuProjectAsync();

        var csproj = XDocument.Load(Path.Combine(project, "Tuned.csproj"));
        Assert.Equal(TestPaths.Fixture("tiny-llama"), Property(csproj, "LoqtModel"));
        Assert.Equal("galore", Property(csproj, "LoqtMethod"));
        Assert.Equal("8", Property(csproj, "LoqtRank"));
        Assert.Equal("cpu", Property(csproj, "LoqtTorchBackend"));
        Assert.Equal(packages.Version, Property(csproj, "LoqtVersion"));
        Assert.True(File.Exists(Path.Combine(project, "bin", packages.Configuration, "net10.0", "Tuned.dll")));
        var program = File.ReadAllText(Path.Combine(project, "Program.cs"));
        Assert.Contains("const int Rank = 8;", program);
        Assert.Contains("const string Method = \"galore\";", program);
    }

    [Fact]
    public async Task GeneratedProgram_FineTunesEvaluatesAndGenerates()
    {
        var project = await BuiltCpuProjectAsync();

        var run = await packages.DotnetAsync(project, Timeout,
            "run", "-c", packages.Configuration, "--no-build", "--", TestPaths.Fixture("tiny-llama"), "2");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("step 2/2", run.Output);
        Assert.Matches(@"validation: loss \d+\.\d{4}, perplexity \d+\.\d\d over \d+ tokens", run.Output);
        Assert.Contains("prompt: Rewrite in the past tense: The boy kicks the pebble down the road.", run.Output);
        Assert.Contains("answer: ", run.Output);
        Assert.True(File.Exists(Path.Combine(project, "runs", "program", "checkpoint-0000002", "loqt.json")), run.ToString());
    }

    [Fact]
    public async Task GeneratedProject_LoqtAdaptTrainsWithTheProjectsSettingsAndItsToolManifest()
    {
        await packages.EnsureToolPackagesAsync();
        var project = await BuiltCpuProjectAsync();

        var adapt = await packages.DotnetAsync(project, Timeout, "build", "-t:LoqtAdapt", "-p:LoqtSteps=2", "-nologo", "-tl:off", "-v:n");

        Assert.True(adapt.ExitCode == 0, adapt.ToString());
        Assert.Contains("LoqtAdapt: training", adapt.Output);
        using (var latest = JsonDocument.Parse(File.ReadAllText(Path.Combine(project, "runs", "adapt", "latest.json"))))
        {
            Assert.Equal("checkpoint-0000002", latest.RootElement.GetProperty("checkpoint").GetString());
        }

        var options = File.ReadAllLines(Path.Combine(project, "obj", "loqt", "adapt.rsp"));
        Assert.Contains("--method \"galore\"", options);
        Assert.Contains("--rank \"8\"", options);
        Assert.Contains("--task \"completion\"", options);
        Assert.Contains("--eval-dataset \"" + Path.Combine(project, "data", "valid.jsonl") + "\"", options);
    }

    [Fact]
    public async Task Template_WithCudaBackend_ReferencesTheCudaPackagesAndTool()
    {
        var hive = await InstalledHiveAsync();
        var project = packages.NewFolder("template-cuda");

        var created = await NewAsync(hive, project, "--backend", "cuda");

        Assert.True(created.ExitCode == 0, created.ToString());
        var csproj = XDocument.Load(Path.Combine(project, "Tuned.csproj"));
        Assert.Equal("cuda", Property(csproj, "LoqtTorchBackend"));
        Assert.Contains(csproj.Descendants("PackageReference"), r => r.Attribute("Include")?.Value == "TorchSharp-cuda-linux" && r.Attribute("Condition")?.Value == "'$(LoqtTorchBackend)' == 'cuda'");
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(project, ".config", "dotnet-tools.json")));
        var tool = manifest.RootElement.GetProperty("tools").GetProperty("loqt.tool.cuda");
        Assert.Equal(packages.Version, tool.GetProperty("version").GetString());
    }

    [Fact]
    public async Task Template_WritesTheSampleDatasetAsPromptCompletionRecords()
    {
        var project = await BuiltCpuProjectAsync();

        foreach (var (file, atLeast) in new[] { ("train.jsonl", 30), ("valid.jsonl", 5) })
        {
            var lines = File.ReadAllLines(Path.Combine(project, "data", file)).Where(l => l.Length > 0).ToList();
            Assert.True(lines.Count >= atLeast, $"{file}: {lines.Count} records");
            foreach (var line in lines)
            {
                using var record = JsonDocument.Parse(line);
                Assert.False(string.IsNullOrWhiteSpace(record.RootElement.GetProperty("prompt").GetString()), line);
                Assert.False(string.IsNullOrWhiteSpace(record.RootElement.GetProperty("completion").GetString()), line);
            }
        }
    }

    /// <summary>The template instantiated once with cpu, galore, rank 8 and the tiny model, and built.</summary>
    private Task<string> BuiltCpuProjectAsync() => packages.SharedAsync("template-cpu-built", async () =>
    {
        var hive = await InstalledHiveAsync();
        var project = packages.NewFolder("template-cpu");
        var created = await NewAsync(hive, project, "--model", TestPaths.Fixture("tiny-llama"), "--method", "galore", "--rank", "8", "--backend", "cpu");
        Assert.True(created.ExitCode == 0, created.ToString());
        var build = await packages.DotnetAsync(project, Timeout, "build", "-c", packages.Configuration, "-nologo", "-tl:off", "-v:m");
        Assert.True(build.ExitCode == 0, build.ToString());
        return project;
    });

    /// <summary>A private template hive with the packed LoQT.Templates installed (the user's own hive is never touched).</summary>
    private Task<string> InstalledHiveAsync() => packages.SharedAsync("template-hive", async () =>
    {
        await packages.EnsureLibraryPackagesAsync();
        var hive = packages.NewFolder("hive");
        var install = await packages.DotnetAsync(packages.Work, Timeout,
            "new", "install", packages.PackagePath("LoQT.Templates"), "--debug:custom-hive", hive);
        Assert.True(install.ExitCode == 0, install.ToString());
        Assert.Contains("loqt-finetune", install.Output);
        return hive;
    });

    private Task<CommandResult> NewAsync(string hive, string project, params string[] options) =>
        packages.DotnetAsync(packages.Work, Timeout,
            ["new", "loqt-finetune", "-n", "Tuned", "-o", project, "--no-update-check", "--debug:custom-hive", hive, .. options]);

    private static string? Property(XDocument project, string name) => project.Descendants(name).SingleOrDefault()?.Value;
}
