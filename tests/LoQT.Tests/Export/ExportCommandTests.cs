using System.Text.Json.Nodes;

namespace LoQT.Tests.Export;

/// <summary><c>loqt export</c> on the command line, and the other commands reading what it wrote.</summary>
[Collection(ExportCollection.Name)]
public sealed class ExportCommandTests(ExportFixture fixture)
{
    [Fact]
    public async Task Export_ReportsEachTensorOnStderr_AndPrintsThePathLastOnStdout()
    {
        var output = fixture.NewPath("cli");

        var (exitCode, stdout, stderr) = await ExportTestSupport.RunAsync("export", "--checkpoint", fixture.RunDirectory, "--output", output);

        Assert.Equal(0, exitCode);
        Assert.Equal(output, stdout.Trim());
        Assert.Contains("[1/21] convert   model.embed_tokens.weight", stderr);
        Assert.Contains("merge+nf4 model.layers.1.self_attn.o_proj.weight", stderr);
        Assert.Contains("[21/21] convert   lm_head.weight", stderr);
        Assert.Contains("14 layers merged, 14 weights NF4", stderr);
        Assert.Contains("peak RSS", stderr);
    }

    [Fact]
    public async Task Json_DescribesTheExport()
    {
        var output = fixture.NewPath("cli-json");

        var (exitCode, stdout, _) = await ExportTestSupport.RunAsync(
            "export", "--checkpoint", fixture.RunDirectory, "--output", output, "--format", "bf16", "--json");

        Assert.Equal(0, exitCode);
        var json = JsonNode.Parse(ExportTestSupport.LastLine(stdout))!;
        Assert.Equal(output, (string?)json["output"]);
        Assert.Equal("bf16", (string?)json["format"]);
        Assert.Equal(0, (int)json["quantized_weights"]!);
        Assert.Contains("model.safetensors", json["files"]!.AsArray().Select(f => (string)f!));
        Assert.True((long)json["peak_rss_bytes"]! > 0);
    }

    [Theory]
    [InlineData("--format", "int8", "nf4 bf16 fp16 fp32")]
    [InlineData("--compute-dtype", "fp64", "bf16 fp16 fp32")]
    public void UnknownChoices_DoNotParse_AndListTheChoices(string option, string value, string choices)
    {
        // LoqtCli.RunAsync prints parse errors as "error: …" and exits 2 before any command runs.
        var parse = LoQT.Tool.LoqtCli.CreateRootCommand().Parse(["export", "--checkpoint", fixture.RunDirectory, "--output", fixture.NewPath("x"), option, value]);

        var error = Assert.Single(parse.Errors);
        Assert.Contains($"'{value}' not recognized", error.Message);
        Assert.All(choices.Split(' '), choice => Assert.Contains($"'{choice}'", error.Message));
    }

    [Theory]
    [InlineData("--double-quant", "--double-quant")]
    [InlineData("--private", "--private")]
    [InlineData("--max-shard-size=lots", "--max-shard-size")]
    [InlineData("--push-to-hub=a/b/c", "--push-to-hub")]
    public async Task OptionsThatDoNotFit_AreUsageErrorsBeforeAnyWork(string option, string named)
    {
        var output = fixture.NewPath("bad-option");

        var (exitCode, _, stderr) = await ExportTestSupport.RunAsync(
            "export", "--checkpoint", fixture.RunDirectory, "--output", output, "--format", "bf16", option);

        Assert.Equal(2, exitCode);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(named, stderr);
        Assert.DoesNotContain("[1/", stderr);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public async Task MissingCheckpoint_FailsNamingIt()
    {
        var missing = Path.Combine(fixture.Root, "nowhere");

        var (exitCode, stdout, stderr) = await ExportTestSupport.RunAsync("export", "--checkpoint", missing, "--output", fixture.NewPath("x"));

        Assert.Equal(1, exitCode);
        Assert.Equal(string.Empty, stdout);
        Assert.Equal($"error: --checkpoint {missing}: no such directory.", stderr.Trim());
    }

    [Fact]
    public async Task EvalAndGenerate_ReadTheNf4Export()
    {
        var output = fixture.NewPath("cli-run");
        Assert.Equal(0, (await ExportTestSupport.RunAsync("export", "--checkpoint", fixture.RunDirectory, "--output", output)).ExitCode);

        var eval = await ExportTestSupport.RunAsync("eval", "--model", output, "--dataset", fixture.EvalFile, "--seq-len", "32", "--max-tokens", "200", "--json");
        var generate = await ExportTestSupport.RunAsync("generate", "--model", output, "--prompt", "The weather", "--max-new-tokens", "6");

        Assert.Equal((0, 0), (eval.ExitCode, generate.ExitCode));
        Assert.Contains("NF4 linear weights", eval.Error);
        Assert.True(JsonNode.Parse(ExportTestSupport.LastLine(eval.Output))!["perplexity"]!.GetValue<double>() > 1);
        Assert.Contains("NF4 linear weights", generate.Error);
        Assert.False(string.IsNullOrWhiteSpace(generate.Output));
    }

    [Theory]
    [InlineData("nf4")]
    [InlineData("bf16")]
    public async Task Adapt_ContinuesTrainingFromTheExport(string format)
    {
        var output = fixture.NewPath("cli-adapt-" + format);
        Assert.Equal(0, (await ExportTestSupport.RunAsync("export", "--checkpoint", fixture.RunDirectory, "--output", output, "--format", format)).ExitCode);
        var run = fixture.NewPath("adapt-" + format);

        var (exitCode, stdout, stderr) = await ExportTestSupport.RunAsync(
            "adapt", "--model", output, "--dataset", fixture.TrainFile, "--output", run,
            "--rank", "4", "--update-interval", "1", "--steps", "2", "--seq-len", "32", "--batch-size", "2", "--json");

        Assert.True(exitCode == 0, stderr);
        var result = JsonNode.Parse(ExportTestSupport.LastLine(stdout))!;
        Assert.Equal(2, (int)result["steps"]!);
        Assert.True(double.IsFinite((double)result["loss"]!));
        Assert.True(File.Exists(Path.Combine((string)result["checkpoint"]!, "adapters.safetensors")));
    }

    [Fact]
    public async Task Help_ExplainsEveryOption()
    {
        var (exitCode, stdout, _) = await ExportTestSupport.RunAsync("export", "--help");

        Assert.Equal(0, exitCode);
        foreach (var option in new[] { "--checkpoint", "--output", "--format", "--double-quant", "--compute-dtype", "--blocksize", "--max-shard-size", "--force", "--push-to-hub", "--private", "--token", "--endpoint", "--json" })
        {
            Assert.Contains(option, stdout);
        }

        Assert.Contains("quantization_config", stdout);
    }
}
