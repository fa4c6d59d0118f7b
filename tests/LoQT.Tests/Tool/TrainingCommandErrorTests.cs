using System.CommandLine;
using LoQT.Tests.Support;
using LoQT.Tool;

namespace LoQT.Tests.Tool;

/// <summary>
/// <c>loqt adapt</c> and <c>loqt pretrain</c> reject bad input with an error that names the option or file, before any
/// training starts (no output directory is made).
/// </summary>
public sealed class TrainingCommandErrorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("loqt-cli-errors-").FullName;

    public TrainingCommandErrorTests()
    {
        File.WriteAllLines(TrainFile, File.ReadLines(Path.Combine(TestPaths.Shared, "data", "nlp-corpus", "train.jsonl")).Take(50));
    }

    private string TrainFile => Path.Combine(_dir, "train.jsonl");

    private string Output => Path.Combine(_dir, "out");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("--rank", "64", "--rank 64")] // tiny-llama's smallest layer is 64 × 64
    [InlineData("--alpha", "0", "alpha")]
    [InlineData("--alpha", "-0.5", "alpha")]
    [InlineData("--seq-len", "257", "--seq-len 257")] // tiny-llama has 256 positions
    public void Adapt_OptionThatDoesNotFit_FailsNamingIt(string option, string value, string named)
    {
        var (exitCode, _, error) = Adapt(option, value);

        Assert.Equal(1, exitCode);
        Assert.StartsWith("error: ", error);
        Assert.Single(error.Split('\n'), l => l.Length > 0); // one line, without .NET's "(Parameter …)" / "Actual value was …"
        Assert.Contains(named, error);
        Assert.False(Directory.Exists(Output));
    }

    [Fact]
    public void Adapt_EmptyDataset_FailsNamingTheFile()
    {
        File.WriteAllText(TrainFile, "");

        var (exitCode, _, error) = Adapt();

        Assert.Equal(1, exitCode);
        Assert.Contains(TrainFile, error);
        Assert.False(Directory.Exists(Output));
    }

    [Fact]
    public void Adapt_UnknownMethod_IsAUsageErrorListingTheMethods()
    {
        var (exitCode, _, error) = Adapt("--method", "qlora");

        Assert.Equal(2, exitCode);
        Assert.Contains("qlora", error);
        foreach (var method in new[] { "loqt", "loqt-nq", "full", "lora", "galore" })
        {
            Assert.Contains(method, error);
        }

        Assert.False(Directory.Exists(Output));
    }

    [Fact]
    public void Pretrain_RankOfTheHiddenSize_FailsNamingTheOption()
    {
        var (exitCode, _, error) = Run(
            "pretrain", "--config", "9m", "--tokenizer", TestPaths.Fixture("tokenizers", "sp-bpe-32k"),
            "--dataset", TrainFile, "--output", Output, "--rank", "128", "--steps", "1");

        Assert.Equal(1, exitCode);
        Assert.Contains("--rank 128", error);
        Assert.False(Directory.Exists(Output));
    }

    private (int ExitCode, string Output, string Error) Adapt(params string[] extra)
    {
        List<string> args = ["adapt", "--model", TestPaths.Fixture("tiny-llama"), "--dataset", TrainFile, "--output", Output, "--steps", "1", .. extra];
        foreach (var (option, value) in new[] { ("--rank", "4"), ("--seq-len", "32") })
        {
            if (!extra.Contains(option))
            {
                args.AddRange([option, value]);
            }
        }

        return Run([.. args]);
    }

    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var parse = LoqtCli.CreateRootCommand().Parse(args);
        if (parse.Errors.Count > 0)
        {
            // What LoqtCli.RunAsync does with a command line that does not parse.
            return (LoqtCli.UsageError, "", string.Join('\n', parse.Errors.Select(e => "error: " + e.Message)));
        }

        var exitCode = parse.Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (exitCode, output.ToString(), error.ToString());
    }
}
