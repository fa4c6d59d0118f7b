using System.CommandLine;
using LoQT.Tool;

namespace LoQT.Tests.Hub;

/// <summary>Runs <c>loqt</c> in-process with captured stdout / stderr.</summary>
internal static class HubCliRunner
{
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exitCode = await LoqtCli.CreateRootCommand().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return (exitCode, output.ToString(), error.ToString());
    }

    public static string LastLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[^1];
}
