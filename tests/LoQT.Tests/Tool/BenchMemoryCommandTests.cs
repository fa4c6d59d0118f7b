using System.CommandLine;
using System.Text.Json;
using LoQT.Tests.SafeTensors;
using LoQT.Tool;

namespace LoQT.Tests.Tool;

/// <summary>
/// One real <c>loqt bench memory</c> run on a one-layer 9m model (three steps: re-initialization, update,
/// re-initialization with optimizer state), shared by the tests, which each check one thing it reports.
/// </summary>
public sealed class BenchMemoryRunFixture : IDisposable
{
    public BenchMemoryRunFixture()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        ExitCode = LoqtCli.CreateRootCommand()
            .Parse(["bench", "memory", "--config", "9m", "--layers", "1", "--steps", "3", "--update-interval", "2", "--rank", "8",
                "--seq-len", "32", "--optimizer", "adamw8bit", "--per-layer", "--svd", "randomized", "--output", Folder.Path, "--json"])
            .InvokeAsync(new InvocationConfiguration { Output = output, Error = error }).GetAwaiter().GetResult();
        Stdout = output.ToString();
        Stderr = error.ToString();
    }

    internal ScratchFolder Folder { get; } = new();

    public int ExitCode { get; }

    public string Stdout { get; }

    public string Stderr { get; }

    public JsonElement Report => JsonDocument.Parse(Stdout).RootElement;

    public void Dispose() => Folder.Dispose();
}

public sealed class BenchMemoryCommandTests(BenchMemoryRunFixture run) : IClassFixture<BenchMemoryRunFixture>
{
    [Fact]
    public void Run_Succeeds_AndPrintsTheReportItSaved()
    {
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var saved = JsonDocument.Parse(File.ReadAllText(run.Folder.File("report.json")));
        Assert.Equal("complete", saved.RootElement.GetProperty("status").GetString());
        Assert.Equal(run.Report.GetProperty("measured").GetProperty("peak_rss_bytes").GetInt64(),
            saved.RootElement.GetProperty("measured").GetProperty("peak_rss_bytes").GetInt64());
    }

    [Fact]
    public void Report_HasMeasuredPeakNextToThePlannersPrediction()
    {
        var measured = run.Report.GetProperty("measured");
        var predicted = run.Report.GetProperty("predicted");

        Assert.True(measured.GetProperty("peak_rss_bytes").GetInt64() > measured.GetProperty("rss_after_load_bytes").GetInt64());
        Assert.True(predicted.GetProperty("total_bytes").GetInt64() > 0);
        Assert.Equal(
            Math.Round((double)measured.GetProperty("peak_rss_bytes").GetInt64() / predicted.GetProperty("total_bytes").GetInt64(), 4),
            measured.GetProperty("peak_over_predicted").GetDouble());
    }

    [Fact]
    public void Report_ComparesTheMethodWithFullAndGalore()
    {
        var compared = run.Report.GetProperty("predicted").GetProperty("compared").EnumerateArray().Select(p => p.GetProperty("method").GetString());

        Assert.Equal(["full", "galore"], compared);
    }

    [Fact]
    public void MeasuredTensors_AreWhatThePlannerCountsForEachStoredComponent()
    {
        var tensors = run.Report.GetProperty("measured").GetProperty("tensor_bytes");
        var planned = run.Report.GetProperty("predicted").GetProperty("bytes");

        // Storage formats are exact: NF4 W and P, bf16 B and embeddings, 8-bit moments (fp32 below 4096 elements).
        foreach (var part in new[] { "weights", "projections", "adapters", "non_quantized", "optimizer_state" })
        {
            Assert.Equal(planned.GetProperty(part).GetInt64(), tensors.GetProperty(part).GetInt64());
        }
    }

    [Fact]
    public void Steps_FollowTheScheduleAndRecordMemory()
    {
        var steps = run.Report.GetProperty("steps").EnumerateArray().ToList();

        Assert.Equal([true, false, true], steps.Select(s => s.GetProperty("reinitialized").GetBoolean()));
        Assert.All(steps, s => Assert.True(s.GetProperty("peak_rss_bytes").GetInt64() >= s.GetProperty("rss_bytes").GetInt64()));
        Assert.Equal(0, steps[0].GetProperty("optimizer_state_bytes").GetInt64()); // a re-initialization step updates nothing
        Assert.True(steps[1].GetProperty("optimizer_state_bytes").GetInt64() > 0);
    }

    [Fact]
    public void Timings_IncludeDequantizationSvdErrorCompensationAndOptimizer()
    {
        var stages = run.Report.GetProperty("seconds_by_stage");

        foreach (var stage in new[] { "forward", "backward", "dequantize", "full_gradient", "svd", "error_compensation", "optimizer" })
        {
            Assert.True(stages.GetProperty(stage).GetDouble() > 0, stage);
        }

        var steps = run.Report.GetProperty("steps").EnumerateArray().ToList();
        Assert.Equal(0, steps[1].GetProperty("seconds_by_stage").GetProperty("svd").GetDouble()); // no SVD in an update step
        Assert.True(run.Report.GetProperty("seconds_per_step").GetProperty("update").GetDouble() > 0);
    }

    [Fact]
    public void LayerReducedRun_AlsoPredictsTheFullDepth()
    {
        var fullDepth = run.Report.GetProperty("predicted_full_depth");

        Assert.Equal(4, fullDepth.GetProperty("layers").GetInt32());
        Assert.True(fullDepth.GetProperty("total_bytes").GetInt64() > run.Report.GetProperty("predicted").GetProperty("total_bytes").GetInt64());
    }

    [Fact]
    public void Charts_ArePngFiles()
    {
        foreach (var chart in new[] { "memory.png", "time.png" })
        {
            var bytes = File.ReadAllBytes(run.Folder.File(chart));
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
        }
    }
}

public sealed class BenchMemoryCommandOptionTests
{
    [Theory]
    [InlineData("--layers", "0")]
    [InlineData("--layers", "5")]
    [InlineData("--steps", "0")]
    [InlineData("--optimizer", "sgd")]
    public void OutOfRangeOption_IsAUsageErrorNamingIt(string option, string value)
    {
        var error = new StringWriter();
        var exitCode = LoqtCli.CreateRootCommand().Parse(["bench", "memory", "--config", "9m", option, value])
            .Invoke(new InvocationConfiguration { Output = new StringWriter(), Error = error });

        Assert.Equal(2, exitCode);
        Assert.Contains(option, error.ToString());
    }
}
