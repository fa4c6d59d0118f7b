using LoQT.Tool;

namespace LoQT.Tests.Tool;

public class HelpTests
{
    [Fact]
    public async Task Help_NamesTheToolLoqtWhateverTheEntryAssembly()
    {
        var (exitCode, output, _) = await ToolRunner.RunAsync("bench", "memory", "--help");

        Assert.Equal(0, exitCode);
        Assert.Contains("Usage:\n  loqt bench memory [options]", output.ReplaceLineEndings("\n"));
        Assert.DoesNotContain("LoQT.Tool", output);
    }

    [Fact]
    public async Task RootHelp_ListsEveryCommand()
    {
        var (exitCode, output, _) = await ToolRunner.RunAsync("--help");

        Assert.Equal(0, exitCode);
        foreach (var command in LoqtCli.CreateRootCommand().Subcommands)
        {
            Assert.Contains("  " + command.Name, output);
        }
    }

    [Fact]
    public async Task Version_PrintsTheProductVersion()
    {
        var (exitCode, output, _) = await ToolRunner.RunAsync("--version");

        Assert.Equal(0, exitCode);
        Assert.Matches(@"^\d+\.\d+\.\d+", output.Trim());
    }
}
