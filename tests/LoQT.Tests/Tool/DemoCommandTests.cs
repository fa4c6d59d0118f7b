using System.Text.Json;
using System.Text.Json.Nodes;
using LoQT.Tests.Hub;
using LoQT.Tests.SafeTensors;
using LoQT.Tool;
using LoQT.Tool.Demo;

namespace LoQT.Tests.Tool;

/// <summary>One <c>loqt demo --quick --json</c> run (seconds), shared by the tests that read its outputs.</summary>
public sealed class QuickDemoRun : IAsyncLifetime
{
    private readonly ScratchFolder _scratch = new();

    public string Output => _scratch.File("demo");

    public (int ExitCode, string Stdout, string Stderr) Result { get; private set; }

    public JsonElement Summary { get; private set; }

    public async Task InitializeAsync()
    {
        Result = await HubCliRunner.RunAsync("demo", "--quick", "--json", "--output", Output);
        if (Result.ExitCode == 0)
        {
            Summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(Output, DemoPipeline.SummaryJsonFileName))).RootElement.Clone();
        }
    }

    public Task DisposeAsync()
    {
        _scratch.Dispose();
        return Task.CompletedTask;
    }
}

/// <summary><c>loqt demo</c>: the offline demo with a tiny budget; its outputs exist and load.</summary>
public sealed class DemoCommandTests(QuickDemoRun demo) : IClassFixture<QuickDemoRun>
{
    private static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    [Fact]
    public void Quick_Succeeds()
    {
        Assert.True(demo.Result.ExitCode == 0, demo.Result.Stderr);
    }

    [Fact]
    public void Chart_IsAPngFile()
    {
        var chart = Path.Combine(demo.Output, DemoPipeline.ChartFileName);
        Assert.Equal(chart, demo.Summary.GetProperty("chart").GetString());
        Assert.Equal(PngSignature, File.ReadAllBytes(chart)[..8]);
    }

    [Fact]
    public void Summary_HasBothMethodsWithFinitePerplexityAndAnAccuracyBetweenZeroAndOne()
    {
        var methods = demo.Summary.GetProperty("methods").EnumerateArray().ToArray();
        Assert.Equal(["loqt", "full"], methods.Select(m => m.GetProperty("method").GetString()));
        foreach (var m in methods.Append(demo.Summary.GetProperty("export")))
        {
            var perplexity = m.GetProperty("held_out_perplexity").GetDouble();
            Assert.True(double.IsFinite(perplexity) && perplexity >= 1, $"perplexity {perplexity}");
            Assert.InRange(m.GetProperty("accuracy").GetDouble(), 0, 1);
            Assert.Equal(DemoSettings.Quick.AccuracyProblems, m.GetProperty("scored").GetInt32());
        }
    }

    [Fact]
    public void Summary_ShowsLoqtTrainingFewerParametersThanFullRank()
    {
        var trainable = demo.Summary.GetProperty("methods").EnumerateArray()
            .ToDictionary(m => m.GetProperty("method").GetString()!, m => m.GetProperty("trainable_parameters").GetInt64());
        Assert.Equal(demo.Summary.GetProperty("model").GetProperty("parameters").GetInt64(), trainable["full"]);
        Assert.InRange(trainable["loqt"], 1, trainable["full"] - 1);
    }

    [Fact]
    public void Json_PrintsTheSummaryFileAsOneLineOnStdout()
    {
        var line = Assert.Single(demo.Result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var summaryFile = File.ReadAllText(Path.Combine(demo.Output, DemoPipeline.SummaryJsonFileName));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(summaryFile), JsonNode.Parse(line)), line);
        Assert.True(File.Exists(Path.Combine(demo.Output, DemoPipeline.SummaryMarkdownFileName)));
    }

    [Fact]
    public void ExportedModel_IsABitsandbytesNf4FolderInsideTheOutput()
    {
        var export = demo.Summary.GetProperty("export");
        var directory = export.GetProperty("directory").GetString()!;

        Assert.Equal("bitsandbytes-nf4", export.GetProperty("format").GetString());
        Assert.Equal(Path.Combine(Path.GetFullPath(demo.Output), "export"), directory);
        using var config = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(directory, "config.json")));
        var quantization = config.RootElement.GetProperty("quantization_config");
        Assert.Equal("bitsandbytes", quantization.GetProperty("quant_method").GetString());
        Assert.Equal("nf4", quantization.GetProperty("bnb_4bit_quant_type").GetString());
    }

    [Fact]
    public async Task ReloadedModelDirectory_LoadsAndGenerates()
    {
        var directory = demo.Summary.GetProperty("export").GetProperty("directory").GetString()!;

        var (exitCode, stdout, stderr) = await HubCliRunner.RunAsync("generate", "--model", directory, "--prompt", "12+3=", "--max-new-tokens", "4");

        Assert.True(exitCode == 0, stderr);
        Assert.Matches("^[0-9+=-]*$", stdout.TrimEnd('\n'));
        Assert.NotEmpty(demo.Summary.GetProperty("export").GetProperty("samples").EnumerateArray());
    }

    [Fact]
    public async Task Rerun_IntoAnEarlierDemoOutput_ReplacesItAndPrintsTheMarkdownTable()
    {
        using var scratch = new ScratchFolder();
        var output = scratch.File("again");
        Assert.Equal(0, (await HubCliRunner.RunAsync("demo", "--quick", "--steps", "2", "--output", output)).ExitCode);

        var (exitCode, stdout, stderr) = await HubCliRunner.RunAsync("demo", "--quick", "--steps", "3", "--output", output);

        Assert.True(exitCode == 0, stderr);
        Assert.Equal(File.ReadAllText(Path.Combine(output, DemoPipeline.SummaryMarkdownFileName)) + Environment.NewLine, stdout);
        Assert.Contains("| loqt |", stdout);
        Assert.Equal(["checkpoint-0000003"], Directory.GetDirectories(Path.Combine(output, "runs", "loqt")).Select(Path.GetFileName));
    }

    [Fact]
    public async Task OutputFolderWithOtherFiles_IsRefusedAndLeftAlone()
    {
        using var scratch = new ScratchFolder();
        var foreign = scratch.File("notes.txt");
        File.WriteAllText(foreign, "mine");

        var (exitCode, stdout, stderr) = await HubCliRunner.RunAsync("demo", "--quick", "--output", scratch.Path);

        Assert.Equal((1, string.Empty), (exitCode, stdout));
        Assert.StartsWith($"error: --output {scratch.Path} is not empty", stderr);
        Assert.Equal(["notes.txt"], scratch.FileNames());
    }

    [Fact]
    public async Task RankTooLargeForTheModel_IsAnErrorNamingTheOptionBeforeAnyWork()
    {
        using var scratch = new ScratchFolder();
        var output = scratch.File("out");

        var (exitCode, _, stderr) = await HubCliRunner.RunAsync("demo", "--quick", "--rank", "64", "--output", output);

        Assert.Equal(1, exitCode);
        Assert.Contains("error: --rank 64", stderr);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void ThreadsBelowOne_DoesNotParse()
    {
        var parse = LoqtCli.CreateRootCommand().Parse(["demo", "--quick", "--threads", "0"]);

        Assert.Equal("--threads must be at least 1.", Assert.Single(parse.Errors).Message);
    }
}
