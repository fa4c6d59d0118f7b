using System.CommandLine;
using LoQT.Tool;

namespace LoQT.Tests.Tool;

/// <summary>Runs <c>loqt</c> in-process, capturing stdout and stderr.</summary>
internal static class ToolRunner
{
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exitCode = await RunAsync(output, error, args);
        return (exitCode, output.ToString(), error.ToString());
    }

    public static async Task<int> RunAsync(TextWriter output, TextWriter error, params string[] args)
    {
        var parse = LoqtCli.CreateRootCommand().Parse(args);
        if (parse.Errors.Count > 0)
        {
            // What LoqtCli.RunAsync does for the real tool: parse errors are usage errors.
            foreach (var problem in parse.Errors)
            {
                await error.WriteLineAsync("error: " + problem.Message);
            }

            return LoqtCli.UsageError;
        }

        return await parse.InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
    }

    public static string LastLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[^1];
}
