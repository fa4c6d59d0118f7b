using System.CommandLine;
using System.Text.Json;
using LoQT.Tool;

namespace LoQT.Tests.Tool;

/// <summary><c>loqt bench nf4</c> on a small matrix (the measurement itself is for people, not tests).</summary>
public sealed class BenchNf4CommandTests
{
    [Fact]
    public void Json_ReportsThroughputOfEachPathAndThatTheyAgree()
    {
        var (exitCode, stdout, stderr) = Run("bench", "nf4", "--rows", "64", "--cols", "130", "--iterations", "1", "--json");

        Assert.Equal((0, string.Empty), (exitCode, stderr));
        using var report = JsonDocument.Parse(stdout);
        var root = report.RootElement;
        Assert.Equal(64, root.GetProperty("rows").GetInt32());
        Assert.True(root.GetProperty("identical").GetBoolean());
        var results = root.GetProperty("results").EnumerateArray()
            .Select(r => (r.GetProperty("path").GetString(), r.GetProperty("operation").GetString(), r.GetProperty("gigabytesPerSecond").GetDouble()))
            .ToArray();
        Assert.Contains(results, r => r is ("cpu", "quantize", > 0));
        Assert.Contains(results, r => r is ("cpu", "dequantize", > 0));
        Assert.Contains(results, r => r is ("torch", "quantize", > 0));
        Assert.Contains(results, r => r is ("torch", "dequantize", > 0));
    }

    [Fact]
    public void Text_PrintsOneLinePerMeasurement()
    {
        var (exitCode, stdout, _) = Run("bench", "nf4", "--rows", "32", "--cols", "64", "--iterations", "1", "--no-torch");

        Assert.Equal(0, exitCode);
        Assert.Contains("GB/s", stdout);
        Assert.DoesNotContain("torch", stdout);
    }

    [Fact]
    public void Output_WritesTheJsonAndAPngChart()
    {
        using var folder = new LoQT.Tests.SafeTensors.ScratchFolder();

        var (exitCode, stdout, _) = Run("bench", "nf4", "--rows", "32", "--cols", "64", "--iterations", "1", "--no-torch", "--output", folder.Path);

        Assert.Equal(0, exitCode);
        Assert.Contains("GB/s", stdout);
        using var saved = JsonDocument.Parse(File.ReadAllText(folder.File("nf4.json")));
        Assert.Equal(3, saved.RootElement.GetProperty("results").GetArrayLength());
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(folder.File("nf4.png"))[..4]);
    }

    [Fact]
    public void InvalidBlockSize_IsAUsageError()
    {
        var (exitCode, _, stderr) = Run("bench", "nf4", "--blocksize", "100");

        Assert.Equal(2, exitCode);
        Assert.Contains("--blocksize", stderr);
    }

    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = LoqtCli.CreateRootCommand().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (exitCode, output.ToString(), error.ToString());
    }
}
